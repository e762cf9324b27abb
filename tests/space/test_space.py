"""SearchSpace: site selection, the three granularities, ranges and the prior trial."""

from __future__ import annotations

import optuna
import pytest
from torch import nn

from droptune import discover
from droptune.exceptions import ConfigError
from droptune.space import PRIORS, RANGES, SearchSpace


@pytest.fixture
def sites():
    model = nn.Sequential(
        nn.Dropout(0.1),  # input
        nn.Linear(4, 8),
        nn.Dropout(0.4),  # dense
        nn.Linear(8, 8),
        nn.Dropout(0.3),  # dense
        nn.Linear(8, 2),
    )
    return discover(model)


def test_select_include_exclude(sites):
    assert [s.name for s in SearchSpace(include=["2", "4"]).select(sites)] == ["2", "4"]
    assert [s.name for s in SearchSpace(exclude=["0"]).select(sites)] == ["2", "4"]


def test_select_nothing_is_an_error_listing_the_sites(sites):
    with pytest.raises(ConfigError, match=r"match none of the model's sites \['0', '2', '4'\]"):
        SearchSpace(include=["head.*"]).select(sites)
    with pytest.raises(ConfigError, match="the model has no dropout modules"):
        SearchSpace().select(discover(nn.Linear(2, 2)))


@pytest.mark.parametrize(
    ("granularity", "params"),
    [("site", ["0", "2", "4"]), ("type", ["input", "dense"]), ("global", ["dropout"])],
)
def test_granularity_names_the_optuna_variables(sites, granularity, params):
    space = SearchSpace(granularity=granularity)
    assert list(space.params(sites)) == params
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    rates = space.suggest(trial, sites)
    assert set(trial.params) == set(params)
    assert list(rates) == ["0", "2", "4"]
    for site in sites:
        assert rates[site.name] == trial.params[space.param_of(site)]


def test_tied_rates_with_type_granularity(sites):
    rates = SearchSpace(granularity="type").rates_from_params({"input": 0.2, "dense": 0.45}, sites)
    assert rates == {"0": 0.2, "2": 0.45, "4": 0.45}


def test_ranges_default_to_design_table_and_can_be_overridden(sites):
    assert SearchSpace().params(sites)["2"] == RANGES["dense"] == (0.0, 0.7)
    assert SearchSpace(ranges={"dense": (0.2, 0.3)}).params(sites)["2"] == (0.2, 0.3)
    # global: the widest range over the types present
    assert SearchSpace(granularity="global").params(sites)["dropout"] == (0.0, 0.7)


def test_suggestions_stay_within_ranges(sites):
    space = SearchSpace(ranges={"dense": (0.2, 0.3), "input": (0.0, 0.05)})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(30):
        rates = space.suggest(study.ask(), sites)
        assert 0.0 <= rates["0"] <= 0.05 and 0.2 <= rates["2"] <= 0.3 and 0.2 <= rates["4"] <= 0.3


def test_prior_params_are_textbook_rates_clipped_to_range(sites):
    assert SearchSpace().prior_params(sites) == {"0": PRIORS["input"], "2": PRIORS["dense"], "4": PRIORS["dense"]}
    assert SearchSpace(ranges={"dense": (0.0, 0.3)}).prior_params(sites)["2"] == 0.3
    # replaying the prior params gives back the prior rates
    space = SearchSpace(granularity="type")
    fixed = optuna.trial.FixedTrial(space.prior_params(sites))
    assert space.suggest(fixed, sites) == {"0": 0.1, "2": 0.5, "4": 0.5}


def test_params_of_another_granularity_are_a_clear_error(sites):
    with pytest.raises(ConfigError, match="no variable 'input'"):
        SearchSpace(granularity="type").rates_from_params({"0": 0.1}, sites)
