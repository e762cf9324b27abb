"""SearchSpace: site selection, the granularities, ranges and the prior trial."""

from __future__ import annotations

import optuna
import pytest
from torch import nn

from droptune import DropoutSite, discover
from droptune.exceptions import ConfigError
from droptune.space import PRIORS, RANGES, SearchSpace


@pytest.fixture
def sites():
    model = nn.Sequential(
        nn.Dropout(0.1),  # input
        nn.Linear(4, 8),
        nn.Dropout(0.4),  # dense
        nn.Linear(8, 8),
        nn.Dropout(0.4),  # dense, built at the same rate: a flat schedule
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
    [("site", ["0", "2", "4"]), ("type", ["input", "dense"]), ("coarse-to-fine", ["input", "dense"]), ("global", ["dropout"])],
)
def test_granularity_names_the_optuna_variables(sites, granularity, params):
    space = SearchSpace(granularity=granularity)
    assert list(space.params(sites)) == params
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    rates = space.suggest(trial, sites)
    assert set(trial.params) == set(params)
    assert list(rates) == ["0", "2", "4"]
    shares = space.shares(sites)  # global ties input (0.1) to dense (0.4): input gets 1/4
    for site in sites:
        assert rates[site.name] == pytest.approx(trial.params[space.param_of(site)] * shares[site.name])


def test_tied_rates_with_type_granularity(sites):
    rates = SearchSpace(granularity="type").rates_from_params({"input": 0.2, "dense": 0.45}, sites)
    assert rates == {"0": 0.2, "2": 0.45, "4": 0.45}


def test_ranges_default_to_design_table_and_can_be_overridden(sites):
    assert SearchSpace(granularity="site").params(sites)["2"] == RANGES["dense"] == (0.0, 0.8)
    assert SearchSpace(granularity="site", ranges={"dense": (0.2, 0.3)}).params(sites)["2"] == (0.2, 0.3)
    assert SearchSpace().params(sites)["dense"] == RANGES["dense"]  # the default, type
    # global: the widest range over the types present
    assert SearchSpace(granularity="global").params(sites)["dropout"] == (0.0, 0.8)


def test_suggestions_stay_within_ranges(sites):
    space = SearchSpace(ranges={"dense": (0.2, 0.3), "input": (0.0, 0.05)})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(30):
        rates = space.suggest(study.ask(), sites)
        assert 0.0 <= rates["0"] <= 0.05 and 0.2 <= rates["2"] <= 0.3 and 0.2 <= rates["4"] <= 0.3


def test_prior_params_are_textbook_rates_clipped_to_range(sites):
    site = SearchSpace(granularity="site")
    assert site.prior_params(sites) == {"0": PRIORS["input"], "2": PRIORS["dense"], "4": PRIORS["dense"]}
    assert SearchSpace(granularity="site", ranges={"dense": (0.0, 0.3)}).prior_params(sites)["2"] == 0.3
    assert SearchSpace().prior_params(sites) == {"input": PRIORS["input"], "dense": PRIORS["dense"]}
    # replaying the prior params gives back the prior rates
    space = SearchSpace(granularity="type")
    fixed = optuna.trial.FixedTrial(space.prior_params(sites))
    assert space.suggest(fixed, sites) == {"0": 0.1, "2": 0.5, "4": 0.5}


def test_params_of_another_granularity_are_a_clear_error(sites):
    with pytest.raises(ConfigError, match="no variable 'input'"):
        SearchSpace(granularity="type").rates_from_params({"0": 0.1}, sites)


def _ask(study, space, sites):
    trial = study.ask()
    return trial, space.suggest(trial, sites)


def test_coarse_to_fine_ties_each_type_then_scales_its_sites(sites):
    space = SearchSpace(granularity="coarse-to-fine", coarse_trials=3)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):  # coarse: one variable per type, the sites of a type tied
        trial, rates = _ask(study, space, sites)
        assert set(trial.params) == {"input", "dense"}
        assert rates["2"] == rates["4"] == trial.params["dense"]
        study.tell(trial, 1.0)
    for _ in range(5):  # fine: a scale per site of the two-site type, none for the lone input site
        trial, rates = _ask(study, space, sites)
        assert set(trial.params) == {"input", "dense", "scale:2", "scale:4"}
        low, high = RANGES["dense"]
        for site in ("2", "4"):
            expected = trial.params["dense"] * 2 ** trial.params[f"scale:{site}"]
            assert rates[site] == pytest.approx(min(max(expected, low), high))
        assert rates["0"] == trial.params["input"]
        study.tell(trial, 1.0)
    assert rates["2"] != rates["4"]


def test_coarse_to_fine_clips_a_scaled_rate_to_its_types_range(sites):
    space = SearchSpace(granularity="coarse-to-fine")
    rates = space.rates_from_params({"input": 0.1, "dense": 0.6, "scale:2": 1.0, "scale:4": -1.0}, sites)
    assert rates == {"0": 0.1, "2": RANGES["dense"][1], "4": pytest.approx(0.3)}


def test_coarse_to_fine_keeps_the_joint_tpe_model_when_scales_appear(sites):
    """The engine's TPE (group=True) models the new scales jointly; plain multivariate TPE would
    sample them independently, as they are missing from the coarse trials."""
    from droptune.tuning._factories import SAMPLERS

    space = SearchSpace(granularity="coarse-to-fine", coarse_trials=6)
    sampler = SAMPLERS["tpe"](0)
    study = optuna.create_study(sampler=sampler)
    study.enqueue_trial(space.prior_params(sites))
    for _ in range(12):
        trial, rates = _ask(study, space, sites)
        study.tell(trial, (rates["2"] - 0.3) ** 2 + (rates["4"] - 0.1) ** 2)
    assert study.trials[0].params == {"input": PRIORS["input"], "dense": PRIORS["dense"]}
    relative = sampler.infer_relative_search_space(study, study.trials[-1])
    assert set(relative) == {"input", "dense", "scale:2", "scale:4"}


def _site(name: str, layer_type: str, rate: float, *, live: bool = True) -> DropoutSite:
    return DropoutSite(name, name, "p", "Dropout", layer_type, rate, live=live)  # type: ignore[arg-type]


def test_inactive_sites_are_not_search_variables():
    sites = [_site("a", "dense", 0.5), _site("b", "residual", 0.1, live=False)]
    space = SearchSpace(granularity="site")
    assert [s.name for s in space.select(sites)] == ["a"]
    assert list(space.params(space.select(sites))) == ["a"]
    with pytest.raises(ConfigError, match="none of the model's sites .* ran in the forward pass"):
        space.select([_site("b", "residual", 0.1, live=False)])


def test_tied_sites_keep_the_models_own_schedule():
    # timm: stochastic depth rising linearly with depth, 0 at the first block
    schedule = [0.0, 0.05, 0.1, 0.15, 0.2]
    sites = [_site(f"blocks.{i}.drop_path", "residual", r) for i, r in enumerate(schedule)]
    sites.append(_site("head", "dense", 0.5))
    space = SearchSpace(granularity="type")
    rates = space.rates_from_params({"residual": 0.3, "dense": 0.25}, sites)
    assert [rates[s.name] for s in sites[:5]] == pytest.approx([0.0, 0.075, 0.15, 0.225, 0.3])
    assert rates["head"] == 0.25  # a group of one: the variable as it is
    # The prior trial gives the deepest block the textbook rate and scales the rest.
    fixed = optuna.trial.FixedTrial(space.prior_params(sites))
    prior = space.suggest(fixed, sites)
    assert prior["blocks.4.drop_path"] == PRIORS["residual"]
    assert prior["blocks.2.drop_path"] == pytest.approx(PRIORS["residual"] / 2)
    # global ties everything, still scaled by each site's share of the largest rate
    rates = SearchSpace(granularity="global").rates_from_params({"dropout": 0.4}, sites)
    assert rates["head"] == 0.4 and rates["blocks.4.drop_path"] == pytest.approx(0.16)
    # per site, every site is free
    assert SearchSpace(granularity="site").shares(sites) == dict.fromkeys(rates, 1.0)


def test_a_group_built_all_at_zero_takes_the_variable_flat():
    sites = [_site("a", "attention", 0.0), _site("b", "attention", 0.0)]
    assert SearchSpace().rates_from_params({"attention": 0.2}, sites) == {"a": 0.2, "b": 0.2}


def test_members_built_at_zero_beside_one_rate_are_untied_and_tuned():
    # Whisper: dropout 0.1 and activation_dropout 0.0 are both "hidden"
    sites = [_site("a.dropout", "hidden", 0.1), _site("a.act", "hidden", 0.0), _site("b.dropout", "hidden", 0.1),
             _site("b.act", "hidden", 0.0)]
    space = SearchSpace(granularity="type")
    assert space.variables(sites) == {
        "a.dropout": "hidden", "a.act": "hidden@0", "b.dropout": "hidden", "b.act": "hidden@0"
    }
    assert space.params(sites) == {"hidden": RANGES["hidden"], "hidden@0": RANGES["hidden"]}
    rates = space.rates_from_params({"hidden": 0.2, "hidden@0": 0.15}, sites)
    assert rates == {"a.dropout": 0.2, "a.act": 0.15, "b.dropout": 0.2, "b.act": 0.15}
    assert space.prior_params(sites) == {"hidden": PRIORS["hidden"], "hidden@0": PRIORS["hidden"]}
    [note] = space.notes(sites)
    assert "a.act, b.act" in note and "'hidden@0'" in note
    # global ties everything but the zeros too
    assert set(SearchSpace(granularity="global").params(sites)) == {"dropout", "dropout@0"}
    assert SearchSpace(granularity="site").notes(sites) == []


def test_a_schedule_keeps_its_zero():
    ramp = [_site("s.0", "residual", 0.0), _site("s.1", "residual", 0.1)]  # stochastic depth from 0
    spread = [_site("d.0", "dense", 0.0), _site("d.1", "dense", 0.2), _site("d.2", "dense", 0.4)]
    space = SearchSpace(granularity="type")
    assert set(space.variables(ramp + spread).values()) == {"residual", "dense"}
    assert space.notes(ramp + spread) == []
    assert space.rates_from_params({"residual": 0.3, "dense": 0.5}, ramp + spread)["s.0"] == 0.0
