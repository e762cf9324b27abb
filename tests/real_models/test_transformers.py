"""transformers models, eager and sdpa attention: every dropout found, typed by role, each one live."""

from __future__ import annotations

import fnmatch
import warnings

import pytest
import torch

from droptune import apply_rates, discover
from droptune.exceptions import DroptuneWarning

from ._hf import FAMILIES as BASE
from ._hf import SITE_COUNTS as BASE_COUNTS
from ._hf import output
from ._hf_more import EAGER_ONLY, MORE, SITE_COUNTS_MORE

FAMILIES = {**BASE, **MORE}
SITE_COUNTS = {**BASE_COUNTS, **SITE_COUNTS_MORE}
CASES = [(f, attn) for f in FAMILIES for attn in ("eager", "sdpa") if attn == "eager" or f not in EAGER_ONLY]
IDS = [f"{family}-{attn}" for family, attn in CASES]


@pytest.fixture(params=CASES, ids=IDS)
def built(request):
    family, attn = request.param
    torch.manual_seed(0)
    model = FAMILIES[family].build(attn)
    example = FAMILIES[family].example()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DroptuneWarning)  # no literal-rate call left out of reach
        sites = discover(model, example)
    return family, model, example, sites


def _forward(model, example, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    with torch.no_grad():
        return output(model(**example))


def test_every_dropout_place_is_a_site_of_the_expected_type(built):
    family, _, _, sites = built
    assert len(sites) == SITE_COUNTS[family]
    patterns = FAMILIES[family].types
    for site in sites:
        expected = next(t for glob, t in patterns.items() if fnmatch.fnmatchcase(site.name, glob))
        assert site.layer_type == expected, (site.name, site.why)
        assert site.live


def test_with_every_site_at_zero_training_is_deterministic(built):
    _, model, example, sites = built
    apply_rates(model, {s.name: 0.0 for s in sites})
    model.train()
    assert torch.equal(_forward(model, example, 1), _forward(model, example, 2))


def test_every_site_alone_changes_the_output(built):
    _, model, example, sites = built
    model.train()
    apply_rates(model, {s.name: 0.0 for s in sites})
    base = _forward(model, example, 1)
    for site in sites:
        apply_rates(model, {site.name: 0.9}, strict=False)
        assert not torch.equal(_forward(model, example, 1), base), site.name
        apply_rates(model, {site.name: 0.0}, strict=False)


def test_discover_leaves_the_model_as_it_was(built):
    _, model, example, sites = built
    model.eval()
    before = _forward(model, example, 0)
    again = discover(model, example)
    assert [s.rate for s in again] == [s.rate for s in sites]
    assert not model.training
    assert torch.equal(_forward(model, example, 0), before)


def test_llama_attention_dropout_is_a_float_attribute_site():
    model = FAMILIES["llama"].build("sdpa")
    [first, _] = discover(model, FAMILIES["llama"].example())
    assert (first.name, first.module_path, first.attr, first.kind, first.functional) == (
        "model.layers.0.self_attn.attention_dropout",
        "model.layers.0.self_attn",
        "attention_dropout",
        "LlamaAttention",
        True,
    )
    assert not discover(model)  # structure alone cannot see it
    apply_rates(model, {first.name: 0.25})
    assert model.model.layers[0].self_attn.attention_dropout == 0.25


@pytest.mark.parametrize("family", ["bert", "distilbert"])
def test_structure_alone_types_module_sites_as_the_trace_does(family):
    model = FAMILIES[family].build("eager")
    traced = {s.name: s.layer_type for s in discover(model, FAMILIES[family].example())}
    assert {s.name: s.layer_type for s in discover(model)} == traced
