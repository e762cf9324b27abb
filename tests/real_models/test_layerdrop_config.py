"""LayerDrop and rates read from a config object: found, held still while tracing, set through the config."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from droptune import apply_rates, discover
from droptune.exceptions import DroptuneWarning
from droptune.sites import find_sites

from ._hf import output
from ._hf_more import _WAV2VEC2, MORE, transformers

SEEDS = range(40)


def _summary(sites):
    return [(s.name, s.layer_type, s.live) for s in sites]


@pytest.mark.parametrize(
    ("family", "layerdrop"),
    [
        ("wav2vec2", "config.layerdrop"),
        ("hubert", "config.layerdrop"),
        ("opt", "model.decoder.layerdrop"),
        ("whisper", "model.encoder.layerdrop"),
    ],
)
def test_discovery_is_the_same_under_every_rng_state(family, layerdrop):
    model = MORE[family].build("eager")
    example = MORE[family].example()
    first = discover(model, example)
    assert all(s.live for s in first)
    assert next(s for s in first if s.name == layerdrop).layer_type == "layerdrop"
    for seed in SEEDS:
        torch.manual_seed(seed)
        assert _summary(discover(model, example)) == _summary(first), seed


def test_twelve_layer_wav2vec2_at_the_default_layerdrop_keeps_every_layer_live():
    config = transformers.Wav2Vec2Config(**{**_WAV2VEC2, "num_hidden_layers": 12})
    model = transformers.Wav2Vec2Model(config)
    example = MORE["wav2vec2"].example()
    for seed in range(10):
        torch.manual_seed(seed)
        sites = discover(model, example)
        assert len(sites) == 1 + 2 + 4 * 12 and all(s.live for s in sites), seed


def test_config_layerdrop_is_restored_as_a_plain_float_and_set_through_the_config():
    model = MORE["wav2vec2"].build("eager")
    discover(model, MORE["wav2vec2"].example())
    assert type(model.config.layerdrop) is float and model.config.layerdrop == 0.1
    apply_rates(model, {"config.layerdrop": 0.25}, strict=False)  # no trace needed: the name says where
    assert model.config.layerdrop == 0.25
    assert model.encoder.config.layerdrop == 0.25  # one shared object


def test_layerdrop_attribute_is_found_from_structure_alone():
    model = MORE["opt"].build("eager")
    [site] = discover(model)  # OPT's other rates are floats only a traced pass ties
    assert (site.name, site.layer_type, site.rate) == ("model.decoder.layerdrop", "layerdrop", 0.1)


def test_layerdrop_changes_which_layers_run():
    model = MORE["opt"].build("eager").train()
    example = MORE["opt"].example()
    rates = {s.name: 0.0 for s in discover(model, example)}
    apply_rates(model, rates)
    torch.manual_seed(0)
    with torch.no_grad():
        base = output(model(**example))
    apply_rates(model, {"model.decoder.layerdrop": 0.9}, strict=False)
    outs = []
    for seed in range(5):
        torch.manual_seed(seed)
        with torch.no_grad():
            outs.append(output(model(**example)))
    assert any(not torch.equal(o, base) for o in outs)


@pytest.mark.parametrize("rate", [0.0, 0.2])
def test_falcon_config_rates_are_sites_at_zero_and_nonzero(rate):
    config = transformers.FalconConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, vocab_size=100,
        parallel_attn=False, hidden_dropout=rate, attention_dropout=rate,
    )
    model = transformers.FalconForCausalLM(config)
    example = MORE["falcon"].example()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DroptuneWarning)  # no "literal rate" left
        sites = {s.name: s for s in discover(model, example)}
    for key in ("hidden_dropout", "attention_dropout"):
        site = sites[f"config.{key}"]
        assert (site.kind, site.rate, site.layer_type, site.functional) == ("FalconConfig", rate, "hidden", True)
        assert getattr(model.config, key) == rate and type(getattr(model.config, key)) is float


def test_falcon_config_rate_in_a_wrapper_is_named_after_the_wrapper_attribute():
    wrapper = nn.Module()
    wrapper.net = MORE["falcon"].build("eager")
    names = [s.name for s in discover(wrapper.net, MORE["falcon"].example())]
    wrapped = [s.name for s in find_sites(wrapper, None).sites]
    assert "config.hidden_dropout" in names and not wrapped
    apply_rates(wrapper, {"net.config.hidden_dropout": 0.3}, strict=False)
    assert wrapper.net.config.hidden_dropout == 0.3


class _Scaled(nn.Module):
    """Reads its rate from a config object and hands on a derived value: out of reach."""

    def __init__(self) -> None:
        super().__init__()
        self.config = SimpleNamespace(hidden_dropout=0.2)
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(self.fc(x), p=self.config.hidden_dropout / 2, training=self.training)


def test_a_derived_config_rate_is_warned_about_naming_the_config_key():
    says = r"a rate computed from config\.hidden_dropout\) in <root> \(_Scaled\), which reads config\.hidden_dropout"
    with pytest.warns(DroptuneWarning, match=says):
        found = find_sites(_Scaled(), torch.randn(2, 4))
    assert found.sites == [] and [u.config_keys for u in found.unreachable] == [("config.hidden_dropout",)]
