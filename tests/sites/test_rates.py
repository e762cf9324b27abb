"""LayerDrop attributes, config-held rates and the watched floats of the traced pass (plain torch, no transformers)."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from droptune import apply_rates, discover
from droptune.sites import find_sites
from droptune.sites._rates import Watched, config_candidates, is_layerdrop
from droptune.sites._trace import trace


class Stack(nn.Module):
    """fairseq-style LayerDrop over a stack of layers, its rate held by the module or read from a config."""

    def __init__(self, *, layerdrop: float = 0.5, in_config: bool = False) -> None:
        super().__init__()
        self.config = SimpleNamespace(layerdrop=layerdrop, hidden_dropout=0.0, initializer_range=0.02)
        if not in_config:
            self.layerdrop = layerdrop
        self.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(4))

    def rate(self) -> float:
        return self.config.layerdrop if not hasattr(self, "layerdrop") else self.layerdrop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            if self.training and torch.rand([]) < self.rate():  # skip the layer
                continue
            x = x + F.dropout(layer(x), p=self.config.hidden_dropout, training=self.training)
        return x


def test_layer_drop_names():
    for name in ("layerdrop", "encoder_layerdrop", "decoder_layerdrop", "layer_drop", "config.layerdrop"):
        assert is_layerdrop(name), name
    for name in ("dropout", "drop_path", "layerdrop_schedule", "player_drop"):
        assert not is_layerdrop(name), name


def test_a_layerdrop_attribute_is_a_site_held_at_zero_while_tracing():
    model = Stack()
    ran = []
    for layer in model.layers:
        layer.register_forward_hook(lambda m, i, o: ran.append(m))
    for seed in range(40):
        torch.manual_seed(seed)
        sites = {s.name: s for s in discover(model, torch.randn(2, 4))}
        assert all(s.live for s in sites.values())
    assert len(ran) == 4 * 40  # at 0.5, about half the layers would be skipped in each pass
    assert (sites["layerdrop"].layer_type, sites["layerdrop"].rate) == ("layerdrop", 0.5)
    assert type(model.layerdrop) is float and model.layerdrop == 0.5


def test_a_config_layerdrop_read_at_forward_time_is_the_site_config_layerdrop():
    model = Stack(in_config=True)
    sites = {s.name: s for s in discover(model, torch.randn(2, 4))}
    assert sites["config.layerdrop"].layer_type == "layerdrop"
    assert sites["config.layerdrop"].kind == "SimpleNamespace"
    # a rate-named config key handed to dropout is found at 0; other floats are not candidates
    assert sites["config.hidden_dropout"].rate == 0.0 and sites["config.hidden_dropout"].functional
    assert "config.initializer_range" not in sites
    assert set(config_candidates(model)) == {("", "config.layerdrop"), ("", "config.hidden_dropout")}
    apply_rates(model, {"config.layerdrop": 0.1, "config.hidden_dropout": 0.2})
    assert (model.config.layerdrop, model.config.hidden_dropout) == (0.1, 0.2)


def test_a_config_key_no_forward_pass_reads_is_no_site():
    model = Stack()  # reads self.layerdrop, never config.layerdrop
    names = [s.name for s in discover(model, torch.randn(2, 4))]
    assert "layerdrop" in names and "config.layerdrop" not in names


def test_reads_are_reported_with_the_module_that_read_them():
    wrapper = nn.Sequential(Stack(in_config=True))
    result = trace(wrapper, torch.randn(2, 4))
    assert result.reads[("0", "config.layerdrop")] == {"0"}


def test_a_watched_float_reports_uses_and_copies_to_a_plain_float():
    seen = []
    value = Watched(0.25, ("m", "layerdrop"), seen.append)
    assert value > 0.0 and torch.rand([]) < 2 * value
    assert seen == [("m", "layerdrop"), ("m", "layerdrop")]
    assert type(copy.deepcopy(value)) is float and copy.deepcopy(value) == 0.25


def test_the_unreachable_warning_is_empty_of_config_keys_when_none_was_read():
    class Literal(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.dropout(x, p=0.3, training=self.training)

    [call] = find_sites(Literal(), torch.randn(2, 4), warn=False).unreachable
    assert call.config_keys == () and "reads" not in call.describe()


def test_a_frozen_config_is_left_alone():
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Frozen:
        hidden_dropout: float = 0.2

    class Reader(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = Frozen()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.dropout(self.fc(x), p=self.config.hidden_dropout, training=self.training)

    assert config_candidates(Reader()) == {}
    found = find_sites(Reader(), torch.randn(2, 4), warn=False)  # the pass runs; the rate is out of reach
    assert found.sites == [] and [u.rate for u in found.unreachable] == [0.2]
