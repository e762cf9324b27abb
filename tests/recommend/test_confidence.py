"""droptune.recommend's caveats: one test (or two) per warning, with a case where it must stay silent."""

from __future__ import annotations

import math

import optuna
from optuna.distributions import FloatDistribution

from droptune import record
from droptune.recommend import basis, caveats, compute, which_figure

TYPES = {"input_dropout": "input", "fc.1": "dense", "fc.4": "dense"}


def add(study, value, *, curve=None, gap=0.05, best_epoch=None, epochs=10, granularity="type", rates=None):
    """A complete trial; ``curve`` is its objective per epoch (intermediate values)."""
    rates = rates or {"input_dropout": 0.1, "fc.1": 0.3, "fc.4": 0.3}
    attrs = record.start_attrs(rates, TYPES)
    attrs.update({record.GAP_ATTR: gap, record.EPOCHS_ATTR: epochs})
    attrs[record.BEST_EPOCH_ATTR] = epochs - 1 if best_epoch is None else best_epoch
    params = dict(rates) if granularity == "site" else record.rates_by_type(rates, TYPES)
    study.add_trial(
        optuna.trial.create_trial(
            params=params,
            distributions={k: FloatDistribution(0.0, 0.9) for k in params},
            value=value,
            user_attrs=attrs,
            intermediate_values=dict(enumerate(curve or [])),
        )
    )


def kinds(study, **kwargs) -> list[str]:
    return [c.kind for c in caveats(study, **kwargs)]


def spread_study(n: int, **kwargs) -> optuna.Study:
    """``n`` trials with values 0.5, 0.6, ... that stopped early (best epoch 3 of 10)."""
    study = optuna.create_study(study_name="s")
    for i in range(n):
        add(study, 0.5 + 0.1 * i, best_epoch=3, **kwargs)
    return study


def test_a_healthy_study_gets_no_warning():
    assert caveats(spread_study(15)) == []


def test_basis_says_how_many_trials_of_how_many():
    assert basis([spread_study(11)]) == "from the best 3 of 11 complete trials"
    assert basis([spread_study(30)], top=0.5) == "from the best 15 of 30 complete trials"


def test_warns_when_the_top_fraction_falls_back_to_all_trials():
    (found,) = [c for c in caveats(spread_study(3)) if c.kind != "few_trials"]
    assert found.kind == "all_trials"
    assert "median of all 3 of them" in found.message and "Run at least 15 trials" in found.message
    assert "all_trials" not in kinds(spread_study(4))  # 3 of 4: the best ones, not all
    assert "all_trials" not in kinds(spread_study(3), top=1.0)  # asked for all of them


def test_warns_when_trial_values_are_within_the_objectives_noise():
    study = optuna.create_study(study_name="s")
    for i in range(8):
        # each trial's loss jitters by ~0.05 from epoch to epoch; trials differ by 0.001
        jitter = [1.0 + (0.05 if e % 2 else 0.0) for e in range(10)]
        add(study, 1.0 + 0.001 * i, curve=jitter, best_epoch=2)
    (found,) = [c for c in caveats(study) if c.kind != "few_trials"]  # 8 trials: also "few"
    assert found.kind == "noise" and "within noise" in found.message
    # |second differences| are 0.1: a deviation of 0.1 / (0.6745 * sqrt(6)) = 0.0605 per epoch
    assert "noise of the objective within a trial (0.0605)" in found.message


def test_a_curve_still_falling_steadily_is_not_taken_for_noise():
    study = optuna.create_study(study_name="s")
    for i in range(8):
        add(study, 0.5 + 0.01 * i, curve=[2.0 - 0.15 * e for e in range(10)], best_epoch=2)
    assert "noise" not in kinds(study)  # falls 0.15 per epoch, without noise around the line


def test_no_noise_warning_when_trials_stand_apart_from_the_jitter():
    study = optuna.create_study(study_name="s")
    for i in range(8):
        add(study, 1.0 + 0.2 * i, curve=[1.0 + (0.05 if e % 2 else 0.0) for e in range(10)], best_epoch=2)
    assert "noise" not in kinds(study)


def test_without_curves_noise_means_values_equal_to_a_tenth_of_a_percent():
    study = optuna.create_study(study_name="s")
    for i in range(8):
        add(study, 1.0 + 1e-5 * i, best_epoch=2)
    assert kinds(study) == ["few_trials", "noise"]


def test_warns_when_a_classifier_sits_at_chance_with_its_number_of_classes():
    study = optuna.create_study(study_name="s")
    study.set_user_attr("n_classes", 10)
    for i in range(8):
        add(study, math.log(10) + 0.01 * i, gap=0.3, best_epoch=2)
    found = [c for c in caveats(study) if c.kind == "chance"]
    assert found and "uniform guess over 10 classes (ln 10 = 2.3026)" in found[0].message
    assert "chance" not in kinds(study, n_classes=3)  # ln 3 = 1.10: not at chance for 3 classes


def test_guesses_chance_when_train_and_validation_losses_both_sit_at_ln_k():
    study = optuna.create_study(study_name="s")
    for i in range(8):
        add(study, math.log(10) + 0.01 * i, gap=0.001, best_epoch=2)
    assert "chance" in kinds(study)
    study = optuna.create_study(study_name="t")
    for i in range(8):  # the same validation loss, but the training loss fell: it learned
        add(study, math.log(10) + 0.01 * i, gap=1.5, best_epoch=2)
    assert "chance" not in kinds(study)


def test_warns_when_most_trials_were_still_improving_at_their_last_epoch():
    study = optuna.create_study(study_name="s")
    for i in range(10):
        add(study, 0.5 + 0.1 * i, epochs=12, best_epoch=11 if i < 6 else 4)
    (found,) = caveats(study)
    assert found.kind == "under_trained"
    assert "6 of 10 complete trials had their best epoch at or near their last one (at most 12 epochs)" in found.message
    assert "Raise trainer.max_epochs (or --max-epochs) above 12" in found.message
    study = optuna.create_study(study_name="t")
    for i in range(10):
        add(study, 0.5 + 0.1 * i, epochs=12, best_epoch=11 if i < 5 else 4)  # half: not most
    assert "under_trained" not in kinds(study)


def test_a_best_epoch_in_the_last_five_percent_counts_as_still_improving():
    study = optuna.create_study(study_name="s")
    for i in range(10):
        add(study, 0.5 + 0.1 * i, epochs=40, best_epoch=38 if i < 6 else 37)  # 38, 39 are the last 5 %
    assert kinds(study) == ["under_trained"]
    study = optuna.create_study(study_name="t")
    for i in range(10):
        add(study, 0.5 + 0.1 * i, epochs=40, best_epoch=37)
    assert kinds(study) == []


def test_says_a_types_rate_is_the_mean_of_its_sites_when_they_differ():
    differ = {"input_dropout": 0.1, "fc.1": 0.2, "fc.4": 0.4}
    (found,) = caveats(spread_study(15, granularity="site", rates=differ))
    assert found.kind == "site_mean" and "(best trial: dense: fc.1 0.200, fc.4 0.400)" in found.message
    assert "different rates, as each site was tuned on its own (granularity site): a type" in found.message
    (found,) = caveats(spread_study(15, granularity="type", rates=differ))  # a schedule kept under one variable
    assert found.kind == "site_mean" and "tied sites keep the model's own ratios" in found.message


def test_no_mean_to_mention_when_a_types_sites_share_one_rate():
    assert "site_mean" not in kinds(spread_study(15, granularity="site"))  # fc.1 and fc.4 both at 0.3
    assert "site_mean" not in kinds(spread_study(15, granularity="type"))


def test_which_figure_is_one_sentence_naming_both_exports_and_a_type_that_differs():
    study = optuna.create_study(study_name="s")
    for i in range(10):
        rates = {"input_dropout": 0.1, "fc.1": 0.05 + 0.01 * i, "fc.4": 0.05 + 0.01 * i}
        add(study, 0.5 + 0.1 * i, rates=rates, best_epoch=3)
    items, _ = compute(study)
    text = which_figure(items)
    assert "droptune export STUDY -o rates.yaml` writes the `best` column" in text and "apply_rates" in text
    assert "`--recommended` the `rate` column" in text
    assert "here dense 0.050" in text and "(dense 0.060)" in text  # trial 0 against the median of the top 3
    assert text.count(". ") == 0 and len(text.split()) < 60  # one sentence, not a paragraph


def test_warns_below_ten_complete_trials_and_not_from_ten_on():
    (found,) = [c for c in caveats(spread_study(6)) if c.kind == "few_trials"]
    assert "only 6 complete trials" in found.message and "--n-trials 24" in found.message
    assert "few_trials" not in kinds(spread_study(10))


def _edge_study(top_rates: list[float], high: float = 0.6) -> optuna.Study:
    """12 trials over an ``input`` variable in [0, high]; the 3 best have ``top_rates``."""
    study = optuna.create_study(study_name="edge")
    rates = [*top_rates, *[0.1 * (i % 5) for i in range(12 - len(top_rates))]]
    for i, rate in enumerate(rates):
        attrs = record.start_attrs({"input_dropout": rate, "fc.1": 0.3}, {"input_dropout": "input", "fc.1": "dense"})
        attrs.update({record.GAP_ATTR: 0.05, record.EPOCHS_ATTR: 10, record.BEST_EPOCH_ATTR: 3})
        study.add_trial(optuna.trial.create_trial(
            params={"input": rate, "dense": 0.3}, value=0.5 + 0.1 * i, user_attrs=attrs,
            distributions={"input": FloatDistribution(0.0, high), "dense": FloatDistribution(0.0, 0.8)},
        ))
    return study


def test_warns_when_the_best_trials_sit_at_the_top_of_a_range_and_names_the_key_to_widen():
    (found,) = [c for c in caveats(_edge_study([0.6, 0.59, 0.57])) if c.kind == "range_edge"]
    assert "'input' (top 0.6)" in found.message and "ranges: {input: [0, 0.8]}" in found.message
    assert "range_edge" not in kinds(_edge_study([0.3, 0.2, 0.4]))  # inside the range: nothing to say
    assert "range_edge" not in kinds(_edge_study([0.9, 0.9, 0.9], high=0.9))  # a range that cannot grow
