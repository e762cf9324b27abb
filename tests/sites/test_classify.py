"""Layer types: from structure alone, and from a traced forward pass on an example input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from droptune import discover
from droptune.exceptions import ConfigError

BOTH = pytest.mark.parametrize("traced", [False, True], ids=["structure", "traced"])


def types_of(model: nn.Module, example: torch.Tensor | None) -> list[str]:
    return [s.layer_type for s in discover(model, example)]


class Permuted(nn.Module):
    """Registered in an order that is not the order of execution."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.5)  # registered first, used after fc1
        self.fc1 = nn.Linear(4, 4)
        self.fc2 = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.fc1(x)))


class PatchEmbed(nn.Module):
    """A ViT's start: conv patches flattened to (batch, tokens, features), then dropout."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, 8, 4, stride=4)
        self.pos_drop = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pos_drop(self.proj(x).flatten(2).transpose(1, 2))


@BOTH
def test_plain_dropout_after_conv2d_is_spatial(traced):
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Dropout(0.3))
    assert types_of(net, torch.randn(2, 1, 8, 8) if traced else None) == ["spatial"]


@BOTH
def test_dropout_after_conv_and_batchnorm_is_spatial(traced):
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.3)
    )
    assert types_of(net, torch.randn(2, 1, 8, 8) if traced else None) == ["spatial"]


@BOTH
def test_dropout_after_conv_then_flatten_is_dense(traced):
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Dropout(0.3), nn.Linear(144, 2))
    assert types_of(net, torch.randn(2, 1, 8, 8) if traced else None) == ["dense"]


@BOTH
def test_dropout_directly_on_the_input_is_input(traced):
    net = nn.Sequential(nn.Dropout(0.1), nn.Conv2d(1, 4, 3))
    assert types_of(net, torch.randn(2, 1, 8, 8) if traced else None) == ["input"]


@BOTH
def test_dropout_after_flatten_of_the_input_is_input(traced):
    net = nn.Sequential(nn.Flatten(), nn.Dropout(0.1), nn.Linear(64, 2), nn.Dropout(0.5))
    assert types_of(net, torch.randn(2, 1, 8, 8) if traced else None) == ["input", "dense"]


@BOTH
def test_a_norm_layer_on_the_input_keeps_it_input(traced):
    net = nn.Sequential(nn.BatchNorm1d(6), nn.Dropout(0.1), nn.Linear(6, 2))
    assert types_of(net, torch.randn(4, 6) if traced else None) == ["input"]


@BOTH
def test_dropout_after_linear_is_dense(traced):
    net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Dropout(0.5), nn.AlphaDropout(0.1))
    assert types_of(net, torch.randn(2, 4) if traced else None) == ["dense", "dense"]


@BOTH
def test_spatial_modules_are_spatial_wherever_they_are(traced):
    # Even on the raw input: choosing Dropout2d says "drop channels of feature maps".
    net = nn.Sequential(nn.Dropout2d(0.1), nn.Flatten(), nn.Linear(64, 4), nn.Dropout1d(0.2))
    example = torch.randn(2, 1, 8, 8) if traced else None
    assert types_of(net, example) == ["spatial", "spatial"]


@BOTH
def test_dropout_after_conv1d_and_conv3d_is_spatial(traced):
    net1 = nn.Sequential(nn.Conv1d(2, 4, 3), nn.Dropout(0.2))
    net3 = nn.Sequential(nn.Conv3d(1, 2, 3), nn.AlphaDropout(0.2))
    assert types_of(net1, torch.randn(2, 2, 6) if traced else None) == ["spatial"]
    assert types_of(net3, torch.randn(2, 1, 4, 4, 4) if traced else None) == ["spatial"]


def test_the_forward_pass_corrects_registration_order():
    assert types_of(Permuted(), None) == ["input"]  # structure can only guess
    assert types_of(Permuted(), torch.randn(2, 4)) == ["dense"]


def test_conv_patches_flattened_to_tokens_are_not_spatial():
    assert types_of(PatchEmbed(), torch.randn(2, 1, 8, 8)) == ["dense"]


def test_a_dropout_not_called_in_the_forward_pass_falls_back_to_structure():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.unused = nn.Dropout(0.2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x)

    assert types_of(Net(), torch.randn(1, 1, 5, 5)) == ["spatial"]


def test_attention_hidden_recurrent_and_residual_agree_with_and_without_a_trace(cases):
    for name in ("lstm", "transformer_encoder", "drop_path"):
        case = cases[name]
        assert [s.layer_type for s in discover(case.build(), case.example())] == list(
            case.sites.values()
        )


def test_example_input_as_keyword_arguments():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.drop = nn.Dropout(0.2)
            self.first = nn.Dropout(0.1)

        def forward(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
            return self.drop(self.fc(self.first(x))) * scale

    assert types_of(Net(), None) == ["dense", "dense"]  # registration order misleads
    assert types_of(Net(), {"x": torch.randn(2, 4), "scale": 2.0}) == ["dense", "input"]


def test_tracing_restores_each_modules_mode_and_needs_no_grad():
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.2))
    net.train()
    net[1].eval()  # a frozen norm layer must stay frozen
    discover(net, torch.randn(3, 4, requires_grad=True))
    assert [m.training for m in net] == [True, False, True]
    assert net.training
    net.eval()
    discover(net, torch.randn(3, 4))
    assert not any(m.training for m in net.modules())


def test_a_failing_forward_pass_is_a_config_error():
    net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.2))
    with pytest.raises(ConfigError, match=r"forward pass on example_input failed \(RuntimeError"):
        discover(net, torch.randn(2, 5))
    assert net.training  # mode restored after the failure
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
