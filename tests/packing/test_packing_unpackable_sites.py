"""Sites a packed population cannot vary per member: LayerDrop, PatchDropout, config keys."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from droptune import discover
from droptune.exceptions import PackingError
from droptune.packing import packable_copy


class Stack(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layerdrop = 0.2
        self.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(2))
        self.drop = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            if self.training and torch.rand([]) < self.layerdrop:
                continue
            x = x + self.drop(layer(x))
        return x


def test_a_tuned_layerdrop_site_is_refused_by_name():
    sites = discover(Stack(), torch.randn(2, 4))
    with pytest.raises(PackingError, match=r"'layerdrop' cannot be packed: LayerDrop .*search.exclude"):
        packable_copy(Stack(), sites)


def test_untuned_layerdrop_keeps_its_rate_in_the_packed_copy():
    model = Stack()
    sites = [s for s in discover(model, torch.randn(2, 4)) if s.layer_type != "layerdrop"]
    packed, buffers = packable_copy(model, sites)
    assert list(buffers) == ["drop"] and packed.layerdrop == 0.2
    packed_all, buffers_all = packable_copy(model)  # untraced: every packable site
    assert list(buffers_all) == ["drop"] and packed_all.layerdrop == 0.2
