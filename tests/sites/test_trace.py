"""The traced pass: ties proved by probing, liveness, roles, and a model left as it was."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from droptune import discover


class TwoFloats(nn.Module):
    """Two floats at 0.1: only the one handed to F.dropout is a site."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.scale = 0.1
        self.p_drop = 0.1
        self.unused_rate = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(self.fc(x) * self.scale, p=self.p_drop, training=self.training)


def test_a_tie_is_proved_by_changing_the_attribute_not_by_an_equal_value():
    [site] = discover(TwoFloats(), torch.randn(2, 4))
    assert (site.name, site.attr, site.rate, site.functional) == ("p_drop", "p_drop", 0.1, True)


def test_discover_restores_rng_attributes_modes_and_buffers():
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), TwoFloats()).eval()
    buffers = {k: v.clone() for k, v in net.named_buffers()}
    torch.manual_seed(0)
    discover(net, torch.randn(3, 4))
    after = torch.rand(3)
    torch.manual_seed(0)
    torch.randn(3, 4)
    assert torch.equal(after, torch.rand(3))  # the pass drew nothing from the global RNG
    assert (net[2].scale, net[2].p_drop, net[2].unused_rate) == (0.1, 0.1, 0.0)
    assert not any(m.training for m in net.modules())
    assert all(torch.equal(v, buffers[k]) for k, v in net.named_buffers())


class PreNormBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(8)
        self.attn = nn.MultiheadAttention(8, 2, dropout=0.1, batch_first=True)
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(8, 8)
        self.fc_drop = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        x = x + self.drop(self.attn(h, h, h, need_weights=False)[0])
        return x + self.fc_drop(self.fc(self.norm(x)))


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 8)
        self.embed_drop = nn.Dropout(0.1)
        self.block = PreNormBlock()
        self.head_drop = nn.Dropout(0.5)
        self.head = nn.Linear(8, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_drop(self.block(self.embed_drop(self.embed(ids))).mean(1)))


def test_roles_in_a_pre_norm_transformer():
    sites = discover(Encoder(), torch.randint(0, 10, (2, 5)))
    assert {s.name: s.layer_type for s in sites} == {
        "embed_drop": "input",
        "block.attn.dropout": "attention",
        "block.drop": "hidden",
        "block.fc_drop": "hidden",
        "head_drop": "dense",
    }


def test_a_residual_mlp_without_attention_stays_dense():
    class ResMLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc0 = nn.Linear(4, 8)
            self.fc = nn.Linear(8, 8)
            self.drop = nn.Dropout(0.3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.fc0(x)
            return x + self.drop(self.fc(x))

    assert [s.layer_type for s in discover(ResMLP(), torch.randn(2, 4))] == ["dense"]


def test_a_model_that_fails_at_probe_values_is_traced_at_its_own():
    class Picky(TwoFloats):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.scale < 0.01:  # a float attribute the model insists on
                raise ValueError("scale too small")
            return super().forward(x)

    import pytest

    from droptune.exceptions import DroptuneWarning

    with pytest.warns(DroptuneWarning) as record:
        sites = discover(Picky(), torch.randn(2, 4))
    assert sites == []  # p_drop and scale share 0.1: no unique tie, nothing claimed
    messages = " ".join(str(w.message) for w in record)
    assert "tied to attributes by equal value" in messages and "literal rate" in messages
    picky = Picky()
    picky.p_drop = 0.2
    with pytest.warns(DroptuneWarning):
        assert [s.name for s in discover(picky, torch.randn(2, 4))] == ["p_drop"]


def test_a_model_that_cannot_train_on_the_example_is_traced_in_eval_mode():
    net = nn.Sequential(
        nn.Linear(4, 4), nn.Dropout(0.2), nn.BatchNorm1d(4)
    )  # one row: BatchNorm fails in training
    import pytest

    from droptune.exceptions import DroptuneWarning

    with pytest.warns(DroptuneWarning, match="traced in eval mode instead"):
        sites = discover(net, torch.randn(1, 4))
    assert [(s.name, s.layer_type, s.live) for s in sites] == [("1", "dense", True)]


class ConvThenTokens(nn.Module):
    """Wav2Vec2's positional conv: a Conv1d over (B, C, T), permuted back to (B, T, C), then dropout."""

    def __init__(self, *, permute_back: bool) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 4, 3, padding=1)
        self.drop = nn.Dropout(0.1)
        self.permute_back = permute_back

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.transpose(1, 2))
        y = F.gelu(y)  # layout-preserving ops keep the conv's layout
        return self.drop(y.transpose(1, 2) if self.permute_back else y)


def test_a_conv_output_permuted_back_to_tokens_is_not_spatial():
    tokens = torch.randn(2, 5, 4)
    [permuted] = discover(ConvThenTokens(permute_back=True), tokens)
    [kept] = discover(ConvThenTokens(permute_back=False), tokens)
    assert permuted.layer_type != "spatial" and kept.layer_type == "spatial"


def test_conv_maps_stay_spatial_through_pooling():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.2), nn.Flatten(), nn.Linear(4, 2))
    [site] = discover(net, torch.randn(2, 3, 4, 4))
    assert site.layer_type == "spatial"
