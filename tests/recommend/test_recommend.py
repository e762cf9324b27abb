"""droptune.recommend: per-layer-type recommendations from in-memory studies."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from droptune.exceptions import ConfigError, StudyError
from droptune.recommend import (
    Recommendation,
    SiteRecommendation,
    compute,
    dump_recommendations,
    recommend,
    variable_importances,
)
from droptune.space import PRIORS

KEYS = {"layer_type", "recommended", "low", "high", "best", "prior", "importance", "n_trials", "sites"}


def ten_trials(study, add_trial, granularity="site"):
    """Trial i has value i (0 is best when minimising) and rates growing with i (the input
    rate quadratically, so that a median and a mean differ)."""
    for i in range(10):
        rates = {"input_dropout": 0.01 * i * i, "fc.1": 0.1 + 0.02 * i, "fc.4": 0.3 + 0.01 * i}
        add_trial(study, rates, float(i), granularity=granularity, prior=i == 5)


def test_recommended_is_median_and_iqr_of_the_top_fraction(make_study, add_trial):
    study = make_study()
    ten_trials(study, add_trial)
    recs = recommend(study, top=0.4)
    assert [r.layer_type for r in recs] == ["input", "dense"]  # LAYER_TYPES order
    inp, dense = recs
    top_input = [0.0, 0.01, 0.04, 0.09]  # trials 0-3 are the best 40 %
    assert inp.recommended == pytest.approx(0.025)  # their median (their mean is 0.035)
    assert inp.recommended == pytest.approx(np.median(top_input))
    assert (inp.low, inp.high) == pytest.approx(tuple(np.percentile(top_input, [25, 75])))
    top_dense = [((0.1 + 0.02 * i) + (0.3 + 0.01 * i)) / 2 for i in range(4)]  # mean of its two sites
    assert dense.recommended == pytest.approx(np.median(top_dense))
    assert dense.best == pytest.approx(0.2)  # trial 0: (0.1 + 0.3) / 2
    assert inp.best == 0.0
    assert (inp.prior, dense.prior) == (PRIORS["input"], PRIORS["dense"])
    assert inp.n_trials == dense.n_trials == 4
    assert inp.sites == ("input_dropout",) and dense.sites == ("fc.1", "fc.4")


def test_at_least_three_trials_back_a_recommendation(make_study, add_trial):
    study = make_study()
    ten_trials(study, add_trial)
    inp = recommend(study, top=0.01)[0]
    assert inp.n_trials == 3
    assert inp.recommended == pytest.approx(0.01)  # median of trials 0, 1, 2


def test_maximize_ranks_the_highest_values_first(make_study, add_trial):
    study = make_study(direction="maximize")
    ten_trials(study, add_trial)
    inp = recommend(study, top=0.3)[0]
    assert inp.best == pytest.approx(0.81)  # trial 9 has the highest value
    assert inp.recommended == pytest.approx(0.64)  # median of trials 7, 8, 9


def test_infeasible_trials_rank_after_feasible_ones(make_study, add_trial):
    study = make_study()
    for i in range(6):
        # the two lowest values break the max_gap constraint (> 0)
        add_trial(study, {"input_dropout": 0.01 * i, "fc.1": 0.2, "fc.4": 0.2}, float(i), constraint=1.0 if i < 2 else -1.0)
    inp = recommend(study, top=0.5)[0]
    assert inp.best == pytest.approx(0.02)
    assert inp.recommended == pytest.approx(0.03)  # trials 2, 3, 4


def test_pruned_and_failed_trials_are_ignored(make_study, add_trial):
    study = make_study()
    ten_trials(study, add_trial)
    add_trial(study, {"input_dropout": 0.29, "fc.1": 0.6, "fc.4": 0.6}, None, state=TrialState.PRUNED)
    add_trial(study, {"input_dropout": 0.29, "fc.1": 0.6, "fc.4": 0.6}, None, state=TrialState.FAIL)
    assert recommend(study, top=0.3)[0].recommended == pytest.approx(0.01)


def test_too_few_complete_trials_is_a_clear_error(make_study, add_trial):
    study = make_study(name="small")
    add_trial(study, {"input_dropout": 0.1, "fc.1": 0.5, "fc.4": 0.5}, 1.0)
    add_trial(study, {"input_dropout": 0.2, "fc.1": 0.5, "fc.4": 0.5}, 2.0)
    add_trial(study, {"input_dropout": 0.2, "fc.1": 0.5, "fc.4": 0.5}, None, state=TrialState.PRUNED)
    with pytest.raises(StudyError, match=r"too few complete trials.*'small' has 2.*at least 3"):
        recommend(study)


def test_pooled_studies_rank_within_each_study(make_study, add_trial):
    a, b = make_study(name="mlp"), make_study(name="cnn")
    ten_trials(a, add_trial)
    conv = {"input_dropout": "input", "conv.2": "spatial"}
    for i in range(5):  # values on another scale: must not push study a's trials out
        add_trial(b, {"input_dropout": 0.2 + 0.01 * i, "conv.2": 0.3}, 100.0 + i, layer_types=conv)
    recs = {r.layer_type: r for r in recommend([a, b], top=0.3)}
    assert list(recs) == ["input", "dense", "spatial"]
    assert recs["input"].n_trials == 6  # 3 from each study
    pooled = [0.0, 0.01, 0.04, 0.2, 0.21, 0.22]
    assert recs["input"].recommended == pytest.approx(np.median(pooled))
    assert recs["input"].best == pytest.approx(np.median([0.0, 0.2]))  # both studies' best trials
    assert recs["dense"].n_trials == 3 and recs["spatial"].n_trials == 3
    assert recs["spatial"].sites == ("conv.2",)


def test_pooled_too_few_names_the_small_study(make_study, add_trial):
    a, b = make_study(name="big"), make_study(name="tiny")
    ten_trials(a, add_trial)
    add_trial(b, {"input_dropout": 0.1, "fc.1": 0.5, "fc.4": 0.5}, 1.0)
    with pytest.raises(StudyError, match="'tiny' has 1") as info:
        recommend([a, b])
    assert "'big'" not in str(info.value)


def test_by_site_gives_per_site_figures(make_study, add_trial):
    study = make_study()
    ten_trials(study, add_trial)
    recs = recommend(study, top=0.3, by="site")
    assert all(isinstance(r, SiteRecommendation) for r in recs)
    assert [(r.site, r.layer_type) for r in recs] == [("input_dropout", "input"), ("fc.1", "dense"), ("fc.4", "dense")]
    assert recs[1].recommended == pytest.approx(0.12)  # fc.1 of trials 0-2: 0.10, 0.12, 0.14
    assert recs[2].best == pytest.approx(0.3)
    assert recs[2].prior == PRIORS["dense"]


def test_importance_per_type_is_the_sum_over_its_sites(make_study, add_trial):
    study = make_study()
    rng = np.random.default_rng(0)
    for _ in range(20):
        rates = {name: float(rng.uniform(0, 0.3)) for name in ("input_dropout", "fc.1", "fc.4")}
        add_trial(study, rates, rates["input_dropout"] * 3 + rates["fc.1"] * 0.1)
    per_site = optuna.importance.get_param_importances(study)
    recs = {r.layer_type: r for r in recommend(study)}
    assert recs["input"].importance == pytest.approx(per_site["input_dropout"])
    assert recs["dense"].importance == pytest.approx(per_site["fc.1"] + per_site["fc.4"])
    assert recs["input"].importance + recs["dense"].importance == pytest.approx(1.0)


@pytest.mark.parametrize("granularity", ["type", "global"])
def test_tied_granularities_read_the_trial_attributes(make_study, add_trial, granularity):
    study = make_study()
    ten_trials(study, add_trial, granularity=granularity)
    recs = {r.layer_type: r for r in recommend(study, top=0.3)}
    assert recs["input"].recommended == pytest.approx(0.01)
    assert recs["dense"].recommended == pytest.approx(0.215)  # rates_by_type of trial 1: (0.12 + 0.31) / 2
    if granularity == "global":  # one variable: all the importance, for every type
        assert recs["input"].importance == recs["dense"].importance == 1.0
    else:
        assert recs["input"].importance + recs["dense"].importance == pytest.approx(1.0)


def test_coarse_to_fine_importance_is_that_of_the_type_variables(make_study, add_trial):
    """Fine-phase trials also carry per-site scales; the best one still maps its sites to types."""
    study = make_study()
    ten_trials(study, add_trial, granularity="type")
    for trial in study.get_trials(deepcopy=False):  # replay them as the fine phase: scale 0 = the type rate
        params = {**trial.params, "scale:fc.1": 0.0, "scale:fc.4": 0.0}
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: FloatDistribution(-1.0, 1.0) for k in params},
            value=trial.value - 10, user_attrs=trial.user_attrs))
    per_variable, _ = variable_importances(study)
    assert set(per_variable) == {"input", "dense"}  # the scales are missing from the coarse trials
    recs = {r.layer_type: r for r in recommend(study, top=0.3)}
    assert recs["input"].importance == pytest.approx(per_variable["input"])
    assert recs["dense"].importance == pytest.approx(per_variable["dense"])


def test_single_variable_has_all_the_importance(make_study, add_trial):
    study = make_study()
    for i in range(4):
        add_trial(study, {"d": 0.1 * i}, float(i), layer_types={"d": "dense"})
    assert variable_importances(study) == ({"d": 1.0}, None)
    assert recommend(study)[0].importance == 1.0


def test_importance_that_cannot_be_computed_is_none_with_a_note(make_study, add_trial):
    study = make_study(name="flat")
    for i in range(4):
        add_trial(study, {"input_dropout": 0.05 * i, "fc.1": 0.5, "fc.4": 0.1 * i}, 1.0)  # all values equal
    recs, notes = compute(study)
    assert [r.importance for r in recs] == [None, None]
    assert len(notes) == 1 and "'flat'" in notes[0] and "distinct value" in notes[0]


def test_json_schema_has_exactly_the_documented_keys(make_study, add_trial):
    study = make_study()
    ten_trials(study, add_trial)
    data = json.loads(dump_recommendations(recommend(study), "json"))
    assert isinstance(data, list) and len(data) == 2
    for item in data:
        assert set(item) == KEYS
        assert isinstance(item["sites"], list) and isinstance(item["n_trials"], int)
        assert 0.0 <= item["low"] <= item["recommended"] <= item["high"] < 1.0
    sites = json.loads(dump_recommendations(recommend(study, by="site"), "json"))
    assert set(sites[0]) == KEYS - {"sites"} | {"site"}


def test_to_dict_rounds_rates_but_keeps_the_schema(make_study, add_trial):
    rec = Recommendation("dense", 0.123456, 0.1, 0.2, 0.3, 0.5, None, 3, ("a",))
    assert rec.to_dict() == {
        "layer_type": "dense",
        "recommended": 0.1235,
        "low": 0.1,
        "high": 0.2,
        "best": 0.3,
        "prior": 0.5,
        "importance": None,
        "n_trials": 3,
        "sites": ["a"],
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"top": 0.0}, r"top must be a fraction .*\(0, 1\]"), ({"top": 1.5}, "got 1.5"), ({"by": "layer"}, "type, site")],
)
def test_bad_arguments_are_config_errors(make_study, add_trial, kwargs, message):
    study = make_study()
    ten_trials(study, add_trial)
    with pytest.raises(ConfigError, match=message):
        recommend(study, **kwargs)


def test_no_study_is_an_error():
    with pytest.raises(ConfigError, match="at least one study"):
        recommend([])


def test_the_same_study_twice_is_an_error(make_study, add_trial):
    study = make_study(name="twice")
    ten_trials(study, add_trial)
    with pytest.raises(ConfigError, match="the same study is given twice"):
        recommend([study, study])


def test_untied_zero_members_count_towards_their_types_importance(make_study, add_trial):
    """Type granularity with fc.4 built at 0: its own variable dense@0 sets it."""
    study = make_study()
    rng = np.random.default_rng(1)
    for _ in range(20):
        rates = {name: float(rng.uniform(0, 0.3)) for name in ("input_dropout", "fc.1", "fc.4")}
        add_trial(study, rates, rates["fc.4"] * 3 + rates["input_dropout"] * 0.1, granularity="type")
    untied = make_study(name="untied")
    for trial in study.get_trials(deepcopy=False):
        rates = trial.user_attrs["rates"]
        params = {"input": rates["input_dropout"], "dense": rates["fc.1"], "dense@0": rates["fc.4"]}
        untied.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: FloatDistribution(0.0, 0.9) for k in params},
            value=trial.value, user_attrs=trial.user_attrs))
    per_variable, _ = variable_importances(untied)
    recs = {r.layer_type: r for r in recommend(untied)}
    assert recs["dense"].importance == pytest.approx(per_variable["dense"] + per_variable["dense@0"])
    assert recs["dense"].importance > recs["input"].importance
