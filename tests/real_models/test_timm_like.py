"""timm's dropout patterns (re-implemented in _timm_like: timm cannot be installed here)."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from droptune import apply_rates, discover, get_rates
from droptune.exceptions import DroptuneWarning, SiteError
from droptune.space import SearchSpace

from ._timm_like import EfficientNet, ResNet, VisionTransformer

IMAGES = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
MODELS = {
    "vit": VisionTransformer,
    "deit": functools.partial(VisionTransformer, patch_drop_rate=0.25),  # DeiT with patch_drop_rate
    "resnet": ResNet,
    "efficientnet": EfficientNet,
}


def _sites(name: str, **kwargs):
    torch.manual_seed(0)
    model = MODELS[name](**kwargs)
    return model, discover(model, IMAGES)


def _forward(model: nn.Module, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    with torch.no_grad():
        return model(IMAGES)


def test_vit_sites_and_types():
    _, sites = _sites("vit")
    types = {s.name: s.layer_type for s in sites}
    assert types["pos_drop"] == "input"
    assert types["head_drop"] == "dense"
    for i in range(4):
        assert types[f"blocks.{i}.attn.attn_drop"] == "attention"  # its .p goes to SDPA
        # one config knob, proj_drop_rate, one type
        assert types[f"blocks.{i}.attn.proj_drop"] == types[f"blocks.{i}.mlp.drop2"] == "hidden"
        assert types[f"blocks.{i}.mlp.drop1"] == "hidden"
    residual = [s for s in sites if s.layer_type == "residual"]
    # block 0 was built at rate 0: nn.Identity, no site
    assert [s.name for s in residual] == [
        f"blocks.{i}.drop_path{j}.drop_prob" for i in (1, 2, 3) for j in (1, 2)
    ]
    assert len(sites) == 1 + 4 * 4 + 6 + 1
    fused = next(s for s in sites if s.name == "blocks.0.attn.attn_drop")
    assert fused.functional and fused.live and "scaled_dot_product_attention" in fused.why


def test_vit_unfused_attention_drops_the_softmax_output(monkeypatch):
    from . import _timm_like

    monkeypatch.setattr(_timm_like.Attention, "fused_attn", False)
    _, sites = _sites("vit")
    site = next(s for s in sites if s.name == "blocks.0.attn.attn_drop")
    assert (site.layer_type, site.functional) == ("attention", False)
    assert "softmax" in site.why


def test_resnet_head_rate_is_a_float_attribute_and_drop_block_is_spatial():
    _, sites = _sites("resnet")
    assert {s.name: (s.layer_type, s.kind) for s in sites} == {
        "drop_rate": ("dense", "ResNet"),
        "layer1.0.drop_block.drop_prob": ("spatial", "DropBlock2d"),
        "layer1.1.drop_block.drop_prob": ("spatial", "DropBlock2d"),
    }


def test_a_rate_gated_by_if_self_drop_rate_is_found_at_zero():
    # `if self.drop_rate:` skips F.dropout at 0.0; the probe value takes the branch.
    _, sites = _sites("resnet", drop_rate=0.0)
    head = next(s for s in sites if s.name == "drop_rate")
    assert (head.rate, head.live) == (0.0, True)


def test_efficientnet_drop_paths_without_a_skip_connection_are_inactive():
    _, sites = _sites("efficientnet")
    live = {s.name: s.live for s in sites}
    assert live == {
        "drop_rate": True,
        "blocks.0.drop_path.drop_prob": False,  # 3 -> 8 channels, stride 2: no skip
        "blocks.1.drop_path.drop_prob": True,
        "blocks.2.drop_path.drop_prob": False,
        "blocks.3.drop_path.drop_prob": True,
    }
    tuned = SearchSpace(granularity="site").select(sites)
    assert [s.name for s in tuned] == [
        "drop_rate",
        "blocks.1.drop_path.drop_prob",
        "blocks.3.drop_path.drop_prob",
    ]


@pytest.mark.parametrize("name", list(MODELS))
def test_every_site_at_zero_is_deterministic_and_each_live_site_changes_the_output(name):
    model, sites = _sites(name)
    model.train()
    apply_rates(model, {s.name: 0.0 for s in sites})
    base = _forward(model, 1)
    assert torch.equal(_forward(model, 2), base)
    for site in sites:
        apply_rates(model, {site.name: 0.9}, strict=False)
        changed = not torch.equal(_forward(model, 1), base)
        assert changed == site.live, site.name
        apply_rates(model, {site.name: 0.0}, strict=False)


def test_stochastic_depth_keeps_its_linear_schedule_when_tied():
    _, sites = _sites("vit", drop_path_rate=0.3)
    space = SearchSpace(granularity="type")
    tuned = space.select(sites)
    rates = space.rates_from_params({t: 0.15 for t in {s.layer_type for s in tuned}}, tuned)
    depth = {f"blocks.{i}.drop_path1.drop_prob": 0.15 * i / 3 for i in (1, 2, 3)}
    for name, rate in depth.items():
        assert rates[name] == pytest.approx(rate)


class Wrapper(nn.Module):
    """What a LightningModule holding a timm backbone looks like to discover."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_rates_from_a_wrapper_apply_to_the_bare_backbone_with_strip_prefix():
    wrapped = {s.name: 0.05 for s in discover(Wrapper(VisionTransformer()), IMAGES)}
    bare = VisionTransformer()
    with pytest.raises(SiteError, match=r"pass strip_prefix='net\.'"):
        apply_rates(bare, wrapped)
    apply_rates(bare, wrapped, strip_prefix="net.")
    assert bare.blocks[3].drop_path1.drop_prob == bare.pos_drop.p == 0.05
    back = Wrapper(VisionTransformer())
    plain = {name.removeprefix("net."): rate for name, rate in wrapped.items()}
    with pytest.raises(SiteError, match=r"pass prefix='net\.'"):
        apply_rates(back, plain)
    apply_rates(back, plain, prefix="net.")
    assert back.net.head_drop.p == 0.05


def test_a_site_removed_by_a_zero_rate_says_so():
    rates = {s.name: 0.1 for s in discover(VisionTransformer(drop_path_rate=0.2), IMAGES)}
    with pytest.raises(SiteError, match=r"nn\.Identity in this model: it was built with a rate of 0"):
        apply_rates(VisionTransformer(drop_path_rate=0.0), rates)


def test_a_literal_rate_is_warned_about_with_where_it_runs():
    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(F.dropout(x, 0.3, self.training))

    net = nn.Sequential(nn.Linear(4, 4), Head())
    with pytest.warns(DroptuneWarning, match=r"literal rate .*dropout\(rate 0\.3\) in 1 \(Head\)"):
        assert discover(net, torch.randn(2, 4)) == []


def test_get_rates_with_an_example_input_includes_float_attributes():
    model = ResNet(drop_rate=0.2)
    assert "drop_rate" not in get_rates(model)
    assert get_rates(model, IMAGES)["drop_rate"] == 0.2


def test_patch_dropout_is_a_site_of_its_own_type_held_still_while_tracing():
    model, sites = _sites("deit")
    site = next(s for s in sites if s.name == "patch_drop.prob")
    assert (site.kind, site.layer_type, site.rate, site.live) == ("PatchDropout", "patch", 0.25, True)
    assert len(sites) == 1 + 1 + 4 * 4 + 6 + 1
    tokens = []
    model.patch_drop.register_forward_hook(lambda _m, _i, out: tokens.append(out.shape[1]))
    for seed in range(40):
        torch.manual_seed(seed)
        assert [(s.name, s.layer_type, s.live) for s in discover(model, IMAGES)] == [
            (s.name, s.layer_type, s.live) for s in sites
        ]
    assert tokens == [5] * 40  # class token + 4 patches: even a tiny probe rate would drop one
    assert model.patch_drop.prob == 0.25 and type(model.patch_drop.prob) is float
    assert [s.name for s in discover(model) if s.layer_type == "patch"] == ["patch_drop.prob"]  # structure too
