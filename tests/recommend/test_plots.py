"""droptune.recommend plots: PNG files drawn from a study's trials."""

from __future__ import annotations

import matplotlib
import pytest

from droptune.recommend import gap_figure, rates_figure, recommend, save_plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def study(make_study, add_trial):
    study = make_study(name="plotted")
    add_trial(study, {"input_dropout": 0.1, "fc.1": 0.5, "fc.4": 0.5}, 1.0, prior=True, gap=[0.3, 0.4, 0.5, 0.6])
    for i in range(1, 8):
        rates = {"input_dropout": 0.03 * i, "fc.1": 0.05 * i, "fc.4": 0.6 - 0.05 * i}
        add_trial(study, rates, 1.0 - 0.01 * i * (8 - i), gap=[0.1 * i, 0.05 * i])
    return study


def test_save_plots_writes_the_four_pngs(study, tmp_path):
    written, notes = save_plots(study, tmp_path / "plots", recommendations=recommend(study), metric="val_loss")
    assert notes == []
    names = sorted(p.name for p in written)
    assert names == ["gap_curves.png", "importance.png", "optimization_history.png", "rates_by_layer_type.png"]
    for path in written:
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, path


def test_rates_figure_has_one_panel_per_layer_type_with_the_best_highlighted(study):
    fig = rates_figure(study, recommend(study), metric="val_loss")
    axes = fig.get_axes()
    assert [ax.get_title().split(":")[0] for ax in axes] == ["input", "dense"]
    labels = fig.legends[0].get_texts()
    assert {"best trial", "top 3 trials", "prior trial", "recommended", "textbook prior"} <= {t.get_text() for t in labels}
    assert axes[0].get_ylabel() == "val_loss"


def test_gap_figure_draws_the_best_trials_against_the_prior(study):
    ax = gap_figure(study, n_best=2).get_axes()[0]
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert labels[-1].startswith("prior, trial 0")
    assert [label.split(" (")[0] for label in labels[:-1]] == ["trial 4", "trial 3"]  # values 0.84, 0.85
    prior_line = ax.get_lines()[2]
    assert list(prior_line.get_ydata()) == [0.3, 0.4, 0.5, 0.6]


def test_plotting_leaves_the_global_style_alone(study, tmp_path):
    before = dict(matplotlib.rcParams)
    save_plots(study, tmp_path)  # optuna's plots switch to ggplot inside
    after = dict(matplotlib.rcParams)
    assert {k for k in before if before[k] != after[k]} <= {"backend"}


def test_a_plot_that_fails_is_left_out_with_a_note(study, tmp_path, monkeypatch):
    import droptune.recommend._plots as plots

    def broken(*args, **kwargs):
        raise RuntimeError("no curve")

    monkeypatch.setattr(plots, "gap_figure", broken)
    written, notes = save_plots(study, tmp_path, importance=False)
    assert sorted(p.name for p in written) == ["optimization_history.png", "rates_by_layer_type.png"]
    assert notes == ["plot gap_curves.png left out: RuntimeError: no curve"]
