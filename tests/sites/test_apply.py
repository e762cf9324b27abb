"""get_rates / apply_rates / load_rates: round trips, real effect, errors, files."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml
from torch import nn

from droptune import apply_rates, discover, get_rates
from droptune.exceptions import ConfigError, SiteError
from droptune.sites import load_rates


def outputs(case, model: nn.Module, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    example = case.example()  # same input for every seed of this case
    torch.manual_seed(1000 + seed)
    return case.call(model, example)


def two_runs(case, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    example = case.example()
    torch.manual_seed(1)
    first = case.call(model, example)
    torch.manual_seed(2)
    return first, case.call(model, example)


# --- round trip and real effect -----------------------------------------------------------


def test_get_rates_reads_every_site_in_discover_order(case):
    model = case.build()
    assert get_rates(model) == {s.name: s.rate for s in discover(model)}
    assert list(get_rates(model)) == list(case.sites)


def test_apply_then_get_round_trip(case):
    model = case.build()
    rates = {name: round(0.05 * (i + 1), 2) for i, name in enumerate(case.sites)}
    assert apply_rates(model, rates) is model
    assert get_rates(model) == rates
    assert {s.name: s.rate for s in discover(model)} == rates
    for site in discover(model):  # the value lives where the site says
        assert getattr(site.module(model), site.attr) == rates[site.name]


def test_all_rates_zero_makes_training_deterministic(case):
    model = case.build().train()
    first, second = two_runs(case, model)
    assert not torch.equal(first, second)  # the model's own rates are random in training
    apply_rates(model, dict.fromkeys(case.sites, 0.0))
    first, second = two_runs(case, model)
    assert torch.equal(first, second)


def test_each_site_really_changes_the_model(case):
    """One site at 0.5, all others 0: training becomes random again, so that site acts."""
    model = case.build().train()
    for name in case.sites:
        rates = dict.fromkeys(case.sites, 0.0)
        rates[name] = 0.5
        apply_rates(model, rates)
        first, second = two_runs(case, model)
        assert not torch.equal(first, second), f"setting {name} changed nothing"


def test_eval_mode_ignores_the_rates(case):
    model = case.build().eval()
    apply_rates(model, dict.fromkeys(case.sites, 0.5))
    first, second = two_runs(case, model)
    assert torch.equal(first, second)


def test_partial_mapping_sets_only_what_it_names(cases):
    model = cases["cnn"].build()
    apply_rates(model, {"head.1": 0.1}, strict=False)
    assert get_rates(model) == {"features.3": 0.25, "features.6": 0.3, "head.1": 0.1}


def test_a_partial_mapping_is_an_error_by_default_listing_the_missing_sites(cases):
    model = cases["cnn"].build()
    with pytest.raises(SiteError, match=r"missing sites \['features\.3', 'features\.6'\].*pass strict=False"):
        apply_rates(model, {"head.1": 0.1})
    assert get_rates(model) == {"features.3": 0.25, "features.6": 0.3, "head.1": 0.5}  # nothing was set


def test_integer_rates_are_stored_as_floats(cases):
    model = cases["lstm"].build()
    apply_rates(model, {"in_drop": 0, "lstm.dropout": 0, "drop": 0})
    assert model.lstm.dropout == 0.0 and isinstance(model.lstm.dropout, float)
    assert isinstance(model.drop.p, float)


# --- errors --------------------------------------------------------------------------------


def test_unknown_name_lists_the_valid_names(cases):
    model = cases["cnn"].build()
    with pytest.raises(SiteError, match=r"unknown sites \['features\.4'\]") as info:
        apply_rates(model, {"features.4": 0.2})
    message = str(info.value)
    assert "The model's sites are: ['features.3', 'features.6', 'head.1']" in message
    assert "did you mean 'features.4' -> 'features.3'?" in message or "'features.6'?" in message


def test_single_layer_rnn_dropout_is_not_a_site(cases):
    with pytest.raises(SiteError, match=r"unknown sites \['gru\.dropout'\].*sites are: \['drop'\]"):
        apply_rates(cases["single_layer_rnns"].build(), {"gru.dropout": 0.2})


def test_a_model_without_sites_says_so():
    with pytest.raises(SiteError, match="sites are: none"):
        apply_rates(nn.Linear(2, 2), {"0": 0.1})


def test_strict_mapping_requires_every_site(cases):
    model = cases["mlp"].build()
    with pytest.raises(SiteError, match=r"missing sites \['net\.4'\]"):
        apply_rates(model, {"net.1": 0.1}, strict=True)
    assert get_rates(model) == {"net.1": 0.2, "net.4": 0.5}


@pytest.mark.parametrize(
    "bad",
    [1.0, 1.5, -0.1, math.nan, math.inf, True, False, "0.5", None, [0.1]],
    ids=repr,
)
def test_a_rate_outside_0_1_names_the_site_and_the_value(cases, bad):
    model = cases["lstm"].build()
    with pytest.raises(
        SiteError, match=r"rate of site 'lstm\.dropout' must be .*\[0, 1\); got "
    ) as info:
        apply_rates(model, {"lstm.dropout": bad}, strict=False)
    assert repr(bad) in str(info.value)


def test_numbers_that_are_not_python_floats_are_accepted(cases):
    np = pytest.importorskip("numpy")
    model = cases["mlp"].build()
    apply_rates(model, {"net.1": np.float32(0.25), "net.4": np.int64(0)})
    assert get_rates(model) == {"net.1": 0.25, "net.4": 0.0}


@pytest.mark.parametrize(
    "rates",
    [
        {"net.1": 0.1, "net.4": 1.5},  # one good, one out of range
        {"net.1": 0.1, "net.9": 0.2},  # one good, one unknown
        {"net.4": "0.3", "net.1": 0.1},  # the bad one first
    ],
)
def test_nothing_is_half_applied(cases, rates):
    model = cases["mlp"].build()
    with pytest.raises(SiteError):
        apply_rates(model, rates)
    assert get_rates(model) == {"net.1": 0.2, "net.4": 0.5}


def test_rates_of_the_wrong_type_are_a_config_error(cases):
    with pytest.raises(ConfigError, match="rates must be a mapping"):
        apply_rates(cases["mlp"].build(), [("net.1", 0.1)])


def test_site_error_is_a_value_error():
    assert issubclass(SiteError, ValueError)


# --- files -----------------------------------------------------------------------------------

FULL = {"features.3": 0.1, "features.6": 0.2, "head.1": 0.4}


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
@pytest.mark.parametrize("exported", [True, False], ids=["exported", "plain"])
def test_apply_rates_from_a_file(cases, tmp_path, suffix, exported):
    data = {"study": "cnn", "value": 0.31, "rates": FULL} if exported else FULL
    path = tmp_path / f"best{suffix}"
    path.write_text(json.dumps(data) if suffix == ".json" else yaml.safe_dump(data))
    model = cases["cnn"].build()
    apply_rates(model, path)
    assert get_rates(model) == FULL
    model = cases["cnn"].build()
    apply_rates(model, str(path))
    assert get_rates(model) == FULL


def test_a_file_is_strict_by_default(cases, tmp_path):
    path = tmp_path / "partial.yaml"
    path.write_text("rates:\n  features.3: 0.1\n  head.1: 0.4\n")
    model = cases["cnn"].build()
    with pytest.raises(
        SiteError, match=rf"{path.name} does not match .*missing sites \['features\.6'\]"
    ):
        apply_rates(model, path)
    assert get_rates(model) == {"features.3": 0.25, "features.6": 0.3, "head.1": 0.5}
    apply_rates(model, path, strict=False)
    assert get_rates(model) == {"features.3": 0.1, "features.6": 0.3, "head.1": 0.4}


def test_a_file_naming_an_unknown_site_is_a_site_error(cases, tmp_path):
    path = tmp_path / "best.yaml"
    path.write_text(yaml.safe_dump({"rates": {**FULL, "classifier.0": 0.1}}))
    with pytest.raises(SiteError, match=r"unknown sites \['classifier\.0'\]"):
        apply_rates(cases["cnn"].build(), path, strict=False)


def test_a_bad_rate_in_a_file_names_the_file(cases, tmp_path):
    path = tmp_path / "best.yaml"
    path.write_text(yaml.safe_dump({**FULL, "head.1": 1.0}))
    model = cases["cnn"].build()
    with pytest.raises(SiteError, match=r"best\.yaml: rate of site 'head\.1' .*got 1\.0"):
        apply_rates(model, path)
    assert get_rates(model) == {"features.3": 0.25, "features.6": 0.3, "head.1": 0.5}


def test_unquoted_integer_names_in_yaml(tmp_path):
    path = tmp_path / "rates.yaml"
    path.write_text("1: 0.15\n")
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    apply_rates(net, path)
    assert net[1].p == 0.15


def test_a_plain_mapping_may_have_a_site_named_rates(tmp_path):
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rates = nn.Dropout(0.5)

    path = tmp_path / "plain.yaml"
    path.write_text("rates: 0.2\n")
    net = Net()
    apply_rates(net, path)
    assert net.rates.p == 0.2


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("empty.yaml", "", "holds no rates"),
        ("list.yaml", "- 0.1\n- 0.2\n", "holds no rates"),
        ("scalar.json", "0.5", "holds no rates"),
        ("empty_rates.yaml", "rates: {}\n", "holds no rates"),
        ("broken.yaml", "rates: [0.1\n", "is not valid YAML"),
        ("broken.json", '{"rates": ', "is not valid JSON"),
        ("float_key.yaml", "1.5: 0.1\n", r"site names must be strings; got 1\.5 \(quote it\)"),
    ],
)
def test_unusable_files_are_config_errors(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_rates(path)
    with pytest.raises(ConfigError, match=match):
        apply_rates(nn.Sequential(nn.Dropout(0.1)), path)


def test_a_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot read rates file .*nope\.yaml"):
        apply_rates(nn.Sequential(nn.Dropout(0.1)), tmp_path / "nope.yaml")


def test_load_rates_returns_the_mapping(tmp_path):
    path = tmp_path / "best.json"
    path.write_text(json.dumps({"rates": FULL, "value": 1.0}))
    assert load_rates(path) == FULL


def test_export_like_round_trip(case, tmp_path):
    """get_rates -> file -> apply_rates on a fresh model gives the same rates."""
    model = case.build()
    apply_rates(model, {name: 0.1 * (i % 5) for i, name in enumerate(case.sites)})
    path = tmp_path / "best.yaml"
    path.write_text(yaml.safe_dump({"rates": get_rates(model)}, sort_keys=False))
    fresh = case.build()
    apply_rates(fresh, path)
    assert get_rates(fresh) == get_rates(model)
