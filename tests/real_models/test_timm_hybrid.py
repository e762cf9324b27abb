"""timm's MLP-Mixer, CoAtNet and MaxViT patterns (re-implemented in _timm_hybrid): types by data flow, advice only where true."""

from __future__ import annotations

import fnmatch

import pytest
import torch

from droptune import apply_rates, discover
from droptune.inspect import inspect_model
from droptune.sites import find_sites

from ._timm_hybrid import Attention2d, CoAtNet, MaxVit, MlpMixer

IMAGES = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
MODELS = {"mixer": MlpMixer, "coatnet": CoAtNet, "maxvit": MaxVit}
TYPES = {  # site-name glob -> layer type, first match wins
    "mixer": {"*.mlp_*.drop?": "hidden", "*drop_path*": "residual", "head_drop": "dense"},
    "coatnet": {
        "*.attn.attn_drop": "attention",
        "*.attn.proj_drop": "hidden",  # after the 1x1 proj conv, channels first: not spatial
        "*.mlp.drop": "hidden",
        "*drop_path*": "residual",
        "head_drop": "dense",
    },
    "maxvit": {
        "*.attn.attn_drop": "attention",
        "*.attn.proj_drop": "hidden",
        "*.mlp.drop?": "hidden",
        "*drop_path*": "residual",
        "head_drop": "dense",
    },
}
COUNTS = {"mixer": 11, "coatnet": 12, "maxvit": 27}


def _built(name: str):
    torch.manual_seed(0)
    model = MODELS[name]()
    return model, discover(model, IMAGES)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_site_has_the_type_of_its_role(name):
    _, sites = _built(name)
    assert len(sites) == COUNTS[name]
    for site in sites:
        expected = next(t for glob, t in TYPES[name].items() if fnmatch.fnmatchcase(site.name, glob))
        assert site.layer_type == expected, (site.name, site.why)
        assert site.live


def test_mixer_mlp_dropouts_say_they_are_in_a_residual_branch():
    _, sites = _built("mixer")
    for site in sites:
        if ".mlp_" in site.name:
            assert "inside a sub-layer's residual branch" in site.why, site.why


def test_coatnet_unfused_attention_drops_the_softmax_output(monkeypatch):
    monkeypatch.setattr(Attention2d, "fused_attn", False)
    _, sites = _built("coatnet")
    site = next(s for s in sites if s.name == "stages.1.attn.attn_drop")
    assert site.layer_type == "attention" and "softmax" in site.why


@pytest.mark.parametrize("name", list(MODELS))
def test_every_site_at_zero_is_deterministic_and_each_changes_the_output(name):
    model, sites = _built(name)
    model.train()
    apply_rates(model, {s.name: 0.0 for s in sites})

    def forward(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        with torch.no_grad():
            return model(IMAGES)

    base = forward(1)
    assert torch.equal(forward(2), base)
    for site in sites:
        apply_rates(model, {site.name: 0.9}, strict=False)
        assert not torch.equal(forward(1), base), site.name
        apply_rates(model, {site.name: 0.0}, strict=False)


def test_maxvit_no_batchnorm_advice_where_a_residual_add_comes_first():
    model, _ = _built("maxvit")
    found = find_sites(model, IMAGES)
    drop2 = next(s for s in found.sites if s.name == "stages.0.attn_grid.mlp.drop2")
    # the next module with parameters is the next block's BatchNormAct2d, after the add
    assert [(c.next_module, c.added_first) for c in found.calls_of(drop2)] == [("BatchNormAct2d", True)]
    assert not [line for line in inspect_model(model, IMAGES).advice if "BatchNorm" in line]
