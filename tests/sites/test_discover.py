"""discover(): which sites a model has, their names, order, rates and overrides."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from droptune import discover
from droptune.exceptions import ConfigError, DroptuneWarning
from droptune.nn import DropPath, VariationalDropout


@pytest.mark.parametrize("with_example", [False, True], ids=["structure", "traced"])
def test_every_real_model_has_the_expected_sites_and_types(case, with_example):
    model = case.build()
    example = case.example() if with_example else None
    sites = discover(model, example)
    assert {s.name: s.layer_type for s in sites} == case.sites
    assert [s.name for s in sites] == list(case.sites)  # registration order


def test_names_are_unique_and_the_order_is_stable(case):
    first = [s.name for s in discover(case.build())]
    again = [s.name for s in discover(case.build())]
    traced = [s.name for s in discover(case.build(), case.example())]
    assert len(set(first)) == len(first)
    assert first == again == traced


def test_a_site_records_where_its_rate_lives(cases):
    model = cases["lstm"].build()
    by_name = {s.name: s for s in discover(model)}
    lstm = by_name["lstm.dropout"]
    assert (lstm.module_path, lstm.attr, lstm.kind, lstm.rate) == ("lstm", "dropout", "LSTM", 0.3)
    assert lstm.module(model) is model.lstm
    drop = by_name["drop"]
    assert (drop.module_path, drop.attr, drop.kind, drop.rate) == (
        "drop",
        "p",
        "VariationalDropout",
        0.2,
    )


def test_rates_are_read_from_every_kind_of_holder(cases):
    rates = {s.name: s.rate for s in discover(cases["transformer_decoder_layer"].build())}
    assert rates == dict.fromkeys(rates, 0.1)
    rates = {s.name: s.rate for s in discover(cases["drop_path"].build())}
    assert list(rates.values()) == [0.0, 0.1, 0.2]
    assert all(isinstance(rate, float) for rate in rates.values())


def test_single_layer_rnn_dropout_is_skipped_even_when_set():
    with pytest.warns(UserWarning, match="num_layers"):
        gru = nn.GRU(4, 4, num_layers=1, dropout=0.3)  # torch warns: it does nothing
    assert discover(nn.Sequential(gru)) == []
    assert [s.name for s in discover(nn.Sequential(nn.RNN(4, 4, num_layers=3)))] == ["0.dropout"]


def test_standalone_multihead_attention_is_an_attention_site():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 8)
            self.attn = nn.MultiheadAttention(8, 2, dropout=0.1, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.fc(x)
            return self.attn(x, x, x)[0]

    for example in (None, torch.randn(2, 3, 4)):
        [site] = discover(Net(), example)
        assert (site.name, site.attr, site.layer_type) == ("attn.dropout", "dropout", "attention")


def test_dropouts_inside_a_users_attention_block_are_typed_by_name_without_a_trace():
    class CausalSelfAttention(nn.Module):  # nanoGPT's shape
        def __init__(self) -> None:
            super().__init__()
            self.c_attn = nn.Linear(8, 24)
            self.attn_dropout = nn.Dropout(0.1)
            self.resid_dropout = nn.Dropout(0.1)

    net = nn.Sequential(nn.Linear(8, 8), CausalSelfAttention(), nn.Dropout(0.2))
    types = {s.name: s.layer_type for s in discover(net)}
    assert types == {"1.attn_dropout": "attention", "1.resid_dropout": "hidden", "2": "dense"}


def test_timm_style_drop_path_is_found_by_its_float_drop_prob(timm_drop_path):
    net = nn.Sequential(nn.Linear(4, 4), timm_drop_path(0.25))
    [site] = discover(net)
    assert (site.name, site.attr, site.kind, site.layer_type, site.rate) == (
        "1.drop_prob",
        "drop_prob",
        "TimmDropPath",
        "residual",
        0.25,
    )


def test_a_module_that_only_remembers_a_drop_prob_is_not_a_site():
    class Net(nn.Module):  # a hyperparameter, not stochastic depth: setting it changes nothing
        def __init__(self, drop_prob: float = 0.3) -> None:
            super().__init__()
            self.drop_prob = drop_prob
            self.fc = nn.Linear(4, 4)
            self.drop = nn.Dropout(drop_prob)

    class Scaled(nn.Module):  # a leaf with parameters is not a drop-path module either
        def __init__(self) -> None:
            super().__init__()
            self.drop_prob = 0.1
            self.weight = nn.Parameter(torch.ones(4))

    class NotARate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.drop_prob = "0.1"

    assert [s.name for s in discover(Net())] == ["drop"]
    assert discover(nn.Sequential(Scaled(), NotARate())) == []


def test_drop_block_and_torchvision_stochastic_depth():
    class DropBlock2d(nn.Module):  # timm's DropBlock2d holds a float drop_prob too
        def __init__(self) -> None:
            super().__init__()
            self.drop_prob = 0.1
            self.block_size = 3

    class StochasticDepth(nn.Module):  # torchvision.ops.StochasticDepth keeps its rate in p
        def __init__(self) -> None:
            super().__init__()
            self.p = 0.2
            self.mode = "row"

    net = nn.Sequential(nn.Conv2d(1, 2, 3), DropBlock2d(), StochasticDepth())
    found = [(s.name, s.layer_type, s.rate) for s in discover(net)]
    assert found == [("1.drop_prob", "spatial", 0.1), ("2.p", "residual", 0.2)]


def test_droptune_modules_are_found():
    net = nn.Sequential(nn.Linear(4, 4), VariationalDropout(0.3), DropPath(0.1))
    assert [(s.name, s.kind, s.layer_type) for s in discover(net)] == [
        ("1", "VariationalDropout", "recurrent"),
        ("2.drop_prob", "DropPath", "residual"),
    ]


def test_a_model_without_dropout_has_no_sites():
    assert discover(nn.Sequential(nn.Linear(2, 2), nn.ReLU())) == []


def test_a_model_that_is_a_dropout_has_the_site_p():
    [site] = discover(nn.Dropout(0.2))
    assert (site.name, site.module_path, site.attr, site.layer_type) == ("p", "", "p", "input")


def test_a_shared_dropout_module_is_one_site():
    drop = nn.Dropout(0.3)
    net = nn.Sequential(nn.Linear(4, 4), drop, nn.Linear(4, 4), drop)
    assert [s.name for s in discover(net)] == ["1"]


def test_discover_does_not_change_the_model(case):
    model = case.build()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    discover(model, case.example())
    assert model.training
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm stats included


# --- overrides ---------------------------------------------------------------------------


def test_override_by_glob(cases):
    model = cases["transformer_encoder"].build()
    sites = discover(model, layer_types={"encoder.layers.*.dropout?": "dense", "drop": "input"})
    types = {s.name: s.layer_type for s in sites}
    assert types["encoder.layers.0.dropout1"] == "dense"
    assert types["encoder.layers.1.dropout2"] == "dense"
    assert types["encoder.layers.0.dropout"] == "hidden"  # "dropout?" needs one more char
    assert types["encoder.layers.0.self_attn.dropout"] == "attention"
    assert types["drop"] == "input"


def test_override_first_matching_glob_wins(cases):
    model = cases["cnn"].build()
    overrides = {"features.*": "dense", "features.3": "input", "*": "residual"}
    types = {
        s.name: s.layer_type
        for s in discover(model, torch.randn(2, 1, 8, 8), layer_types=overrides)
    }
    assert types == {"features.3": "dense", "features.6": "dense", "head.1": "residual"}


def test_override_with_an_invalid_layer_type_is_a_config_error(cases):
    with pytest.raises(
        ConfigError, match=r"'convolutional' is not a layer type; valid: input, dense, spatial"
    ):
        discover(cases["cnn"].build(), layer_types={"features.*": "convolutional"})


@pytest.mark.parametrize(
    ("layer_types", "match"),
    [
        (["features.*", "dense"], "must be a mapping"),
        ({"features.*": None}, "None is not a layer type"),
        ({3: "dense"}, "glob must be a string"),
    ],
)
def test_malformed_overrides_are_config_errors(cases, layer_types, match):
    with pytest.raises(ConfigError, match=match):
        discover(cases["cnn"].build(), layer_types=layer_types)


def test_an_override_matching_no_site_is_warned_about(cases):
    with pytest.warns(DroptuneWarning, match=r"\['blocks\.\*'\] match no dropout site"):
        discover(cases["cnn"].build(), layer_types={"features.*": "dense", "blocks.*": "residual"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # shadowed by an earlier glob, but it matches sites: no warning
        discover(cases["cnn"].build(), layer_types={"*": "dense", "features.*": "spatial"})


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)
