"""A confirmed study (``droptune confirm``): export and recommend keep the best mean over fresh seeds."""

from __future__ import annotations

import functools

import optuna
import pytest

from droptune.export import export_best
from droptune.recommend import recommend
from droptune.recommend._confirmed import confirmed_note
from droptune.record import best_trial
from droptune.testing import add_trial
from droptune.tuning._confirm import Finalist, record_finalists

TYPES = {"input_dropout": "input", "dropout": "dense"}
add = functools.partial(add_trial, layer_types=TYPES)


def searched() -> optuna.Study:
    study = optuna.create_study(study_name="s")
    for i, value in enumerate([0.50, 0.40, 0.45, 0.60, 0.55]):  # trial 1: best single value
        add(study, {"input_dropout": 0.05 * i, "dropout": 0.1 * (i + 1)}, value)
    return study


def finalist(trial: int, mean: float, sd: float) -> Finalist:
    return Finalist(trial=trial, n=5, value_mean=mean, value_sd=sd, gap_mean=0.1, gap_sd=0.01, search_value=0.0)


def confirmed(study: optuna.Study) -> optuna.Study:
    # trial 1 was lucky: retrained, trial 2 has the better mean
    record_finalists(study, [finalist(2, 0.47, 0.01), finalist(1, 0.49, 0.02)], study="s.confirm", seeds=5)
    return study


def test_an_unconfirmed_study_keeps_its_best_single_trial():
    study = searched()
    assert best_trial(study).number == 1
    assert "confirmed" not in export_best(study)
    assert confirmed_note(study) is None


def test_export_keeps_the_best_confirmed_mean_and_says_so():
    config = export_best(confirmed(searched()))
    assert config["trial"] == 2 and config["rates"] == {"input_dropout": 0.1, "dropout": 0.30000000000000004}
    assert config["confirmed"] == {"n": 5, "value_mean": 0.47, "value_sd": 0.01, "gap_mean": 0.1, "gap_sd": 0.01}
    # exporting a named trial that was not the kept one carries its own confirmation, if any
    assert export_best(confirmed(searched()), trial=1)["confirmed"]["value_mean"] == 0.49
    assert "confirmed" not in export_best(confirmed(searched()), trial=0)


def test_recommend_reports_the_confirmed_configuration_as_best():
    study = confirmed(searched())
    by_type = {r.layer_type: r for r in recommend(study)}
    assert by_type["dense"].best == pytest.approx(0.3) and by_type["input"].best == pytest.approx(0.1)  # trial 2, not 1
    note = confirmed_note(study)
    assert note is not None and "best is trial 2" in note and "0.47 ± 0.01" in note and "5 fresh seeds" in note


def test_the_report_page_says_which_configuration_is_kept():
    from droptune.report import render_report

    html = render_report(confirmed(searched()))
    assert "the best is trial 2, the best mean over 5 fresh seeds" in html
    assert "fresh seeds" not in render_report(searched())
