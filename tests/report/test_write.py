"""droptune.report.write_report: one self-contained page with the answer, the caveats and the plots."""

from __future__ import annotations

import html
import os
import re
import stat

import optuna
import pytest

from droptune.exceptions import ConfigError
from droptune.recommend import compute
from droptune.report import render_report, write_report

PLOTS = ("parallel", "gap", "importance", "history", "intermediate")


def text_of(page: str) -> str:
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.DOTALL)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def test_the_page_holds_the_recommendation_with_its_evidence(study, tmp_path):
    path = write_report(study, tmp_path / "sub" / "report.html")
    text = text_of(path.read_text())
    items, _ = compute(study)
    dense = next(r for r in items if r.layer_type == "dense")
    assert "from the best 3 of 9 complete trials" in text
    assert (
        f"dense: {dense.recommended:.3f}, the median rate from the best 3 of 9 complete trials "
        f"(middle half {dense.low:.3f}-{dense.high:.3f}). The best trial used {dense.best:.3f}" in text
    )
    # which column goes in training code, and which command writes it
    assert "droptune export STUDY -o rates.yaml` writes the `best` column" in text and "`--recommended`" in text


def test_every_plot_is_drawn_and_plotly_is_inlined_once(study):
    page = render_report(study)
    for key in PLOTS:
        assert f'id="toy-{key}"' in page, key
    assert page.count("Plotly.newPlot(") >= len(PLOTS)
    assert len(re.findall(r"\* plotly\.js v\d", page)) == 1  # the library's banner: one copy


def test_the_page_fetches_nothing(study):
    page = render_report(study)
    assert "<link" not in page
    assert not re.search(r"""<(script|img|iframe)[^>]*\bsrc=""", page)


def test_overfitting_trials_and_caveats_are_stated(study):
    text = text_of(render_report(study))
    assert "Overfitting gap per epoch: 3 of 12 trials overfit" in render_report(study)
    assert "6 of 9 complete trials had their best epoch at or near their last one" in text  # trials 0-5
    assert "9 complete, 2 pruned, 1 failed trials" in text


def test_a_study_too_small_to_recommend_from_still_gets_its_plots(add, tmp_path):
    small = optuna.create_study(study_name="small")
    for i in range(2):
        add(small, {"input_dropout": 0.1 * i, "fc.1": 0.2, "fc.4": 0.2}, [1.0 - 0.1 * i, 0.9 - 0.1 * i], [0.0, 0.1])
    page = render_report(small)
    assert "No recommendation yet: too few complete trials to recommend" in text_of(page)
    assert 'id="small-history"' in page and 'id="small-gap"' in page


def test_several_studies_are_pooled_and_shown_one_by_one(study, add):
    other = optuna.create_study(study_name="other")
    for i in range(4):
        add(other, {"input_dropout": 0.1, "fc.1": 0.3 + 0.01 * i, "fc.4": 0.3}, [1.0 + i, 0.9 + i], [0.0, 0.1])
    text = text_of(render_report([study, other]))
    assert "the best 3 of 9 complete trials of 'toy'; the best 3 of 4 complete trials of 'other'" in text
    assert "Study toy" in text and "Study other" in text


def test_the_file_is_readable_by_others_as_the_umask_allows(study, tmp_path):
    old = os.umask(0o022)
    try:
        path = write_report(study, tmp_path / "r.html")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_bad_arguments_are_one_clear_error(study, tmp_path):
    with pytest.raises(ConfigError, match="at least one study"):
        write_report([], tmp_path / "r.html")
    with pytest.raises(ConfigError, match=r"top must be a fraction"):
        write_report(study, tmp_path / "r.html", top=1.5)
    (tmp_path / "taken").mkdir()
    with pytest.raises(ConfigError, match="cannot write report .*taken: it is a folder"):
        write_report(study, tmp_path / "taken")
    assert not list(tmp_path.glob("r.html*"))  # nothing half-written


def test_trials_without_per_epoch_curves_get_a_page_without_those_plots():
    from droptune import record

    bare = optuna.create_study(study_name="bare")
    for i in range(4):
        rates = {"input_dropout": 0.05 * i, "fc.1": 0.1, "fc.4": 0.1}
        attrs = record.start_attrs(rates, {"input_dropout": "input", "fc.1": "dense", "fc.4": "dense"})
        bare.add_trial(optuna.trial.create_trial(value=1.0 + i, user_attrs=attrs))
    page = render_report(bare)
    assert text_of(page).count("left out: the trials record no per-epoch curves.") == 2  # gap and per-epoch
    assert 'id="bare-gap"' not in page and 'id="bare-intermediate"' not in page
    assert 'id="bare-parallel"' in page and 'id="bare-history"' in page
