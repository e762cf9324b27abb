"""Confirmed finalists: the top configurations retrained with fresh seeds, as a resumable study."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from droptune.config import load_config
from droptune.exceptions import ConfigError, StudyError
from droptune.record import (
    CONFIRM_INDEX_ATTR,
    CONFIRM_ORIGIN_ATTR,
    CONFIRM_SEED_ATTR,
    PACK_ATTR,
    confirmed_finalists,
    rank_trials,
    site_rates,
)
from droptune.testing import add_trial
from droptune.tuning import FitExecutor, prepare_study
from droptune.tuning._confirm import SUFFIX, baseline_kind, confirm, confirm_seed

STORAGE = "sqlite:///studies/droptune.db"


def tiny_spec(folder: Path, n_trials: int = 4, pack: int = 1):
    path = folder / "tiny.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            name: tiny
            model: {{class_path: droptune.testing.TinyModule}}
            data: {{class_path: droptune.testing.TinyDataModule}}
            search: {{n_trials: {n_trials}, sampler: random, pruner: none, granularity: site, pack: {pack}}}
            trainer: {{max_epochs: 2, early_stopping_patience: null, accelerator: cpu}}
            tracking_uri: none
            seed: 11
            """
        )
    )
    return load_config(path)


def searched(folder: Path, **kwargs):
    spec = tiny_spec(folder, **kwargs)
    prepare_study(spec).tune()
    return spec, optuna.load_study(study_name="tiny", storage=STORAGE)


def confirm_trials(state: TrialState | None = TrialState.COMPLETE):
    study = optuna.load_study(study_name="tiny" + SUFFIX, storage=STORAGE)
    return [t for t in study.get_trials() if state is None or t.state == state]


def test_confirm_retrains_the_top_configurations_with_fresh_paired_seeds(in_tmp, monkeypatch):
    import lightning.pytorch as pl

    spec, search = searched(in_tmp)
    seeded: list[int] = []
    real = pl.seed_everything
    monkeypatch.setattr(pl, "seed_everything", lambda seed, **kw: seeded.append(seed) or real(seed, **kw))
    finalists = confirm(spec, top=2, seeds=3)

    done = confirm_trials()
    top = [t.number for t in rank_trials(search)[:2]]
    by_origin: dict[int, list] = {}
    for t in done:
        by_origin.setdefault(t.user_attrs[CONFIRM_ORIGIN_ATTR], []).append(t)
    assert sorted(by_origin) == sorted(top)
    for origin, trials in by_origin.items():
        assert sorted(t.user_attrs[CONFIRM_INDEX_ATTR] for t in trials) == [0, 1, 2]
        # the configuration is replayed exactly
        assert all(site_rates(t) == site_rates(search.trials[origin]) for t in trials)
        # fresh seeds give different outcomes of the same configuration
        assert len({t.value for t in trials}) == 3
    seeds = {(t.user_attrs[CONFIRM_ORIGIN_ATTR], t.user_attrs[CONFIRM_INDEX_ATTR]): t.user_attrs[CONFIRM_SEED_ATTR] for t in done}
    assert seeds == {(origin, i): confirm_seed(spec) + i for origin in top for i in range(3)}  # retrain i: seed i
    search_seeds = {spec.seed + t.number for t in search.trials}
    assert not search_seeds & set(seeds.values())
    assert sorted(seeded) == sorted(seeds.values())  # what the executor trained with
    # nothing pruned (pruning is off), and the summary is on the search study, best mean first
    assert len(done) == 6 and not confirm_trials(TrialState.PRUNED)
    recorded = confirmed_finalists(optuna.load_study(study_name="tiny", storage=STORAGE).user_attrs)
    assert [f["trial"] for f in recorded] == [f.trial for f in finalists]
    for f in finalists:
        values = [t.value for t in by_origin[f.trial]]
        assert f.n == 3 and math.isclose(f.value_mean, sum(values) / 3)
        assert f.value_sd > 0 and f.gap_sd >= 0
    assert finalists[0].value_mean <= finalists[1].value_mean


def test_an_interrupted_confirmation_resumes_and_redoes_the_lost_retrain(in_tmp, monkeypatch):
    spec, _ = searched(in_tmp, n_trials=3)
    fit, calls = FitExecutor._fit, []

    def ctrl_c_in_third_fit(self, trial, model, data):
        calls.append(trial.number)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as Ctrl-C mid-training
        return fit(self, trial, model, data)

    monkeypatch.setattr(FitExecutor, "_fit", ctrl_c_in_third_fit)
    with pytest.raises(KeyboardInterrupt):
        confirm(spec, top=2, seeds=2)
    before = confirm_trials(None)
    lost = [t for t in before if t.state == TrialState.FAIL]
    assert len(lost) == 1 and len(confirm_trials()) == 2
    lost_pair = (lost[0].user_attrs[CONFIRM_ORIGIN_ATTR], lost[0].user_attrs[CONFIRM_INDEX_ATTR])

    monkeypatch.setattr(FitExecutor, "_fit", fit)
    confirm(spec, top=2, seeds=2)
    done = confirm_trials()
    pairs = sorted((t.user_attrs[CONFIRM_ORIGIN_ATTR], t.user_attrs[CONFIRM_INDEX_ATTR]) for t in done)
    assert len(done) == 4 and len(set(pairs)) == 4  # every planned retrain exactly once
    assert lost_pair in pairs  # the interrupted retrain was redone with its configuration
    # the redone retrain kept its pair's seed: retrain i of each configuration trains with seed i
    assert all(t.user_attrs[CONFIRM_SEED_ATTR] == confirm_seed(spec) + t.user_attrs[CONFIRM_INDEX_ATTR] for t in done)


def test_more_seeds_later_extend_the_same_confirmation(in_tmp):
    spec, _ = searched(in_tmp, n_trials=3)
    confirm(spec, top=1, seeds=2)
    finalists = confirm(spec, top=1, seeds=3)
    assert len(confirm_trials()) == 3 and finalists[0].n == 3


def test_a_packed_search_is_confirmed_in_packed_populations(in_tmp):
    spec, _ = searched(in_tmp, n_trials=3, pack=3)
    finalists = confirm(spec, top=2, seeds=2)
    done = confirm_trials()
    assert len(done) == 4 and all(t.user_attrs.get(PACK_ATTR) for t in done)
    assert {f.trial for f in finalists} == {t.user_attrs[CONFIRM_ORIGIN_ATTR] for t in done}


@pytest.mark.parametrize(("top", "seeds", "match"), [(0, 3, "--top"), (2, 1, "--seeds"), (2, True, "--seeds")])
def test_bad_arguments_are_refused_before_anything_is_written(in_tmp, top, seeds, match):
    spec, _ = searched(in_tmp, n_trials=2)
    with pytest.raises(ConfigError, match=match):
        confirm(spec, top=top, seeds=seeds)
    assert "tiny" + SUFFIX not in optuna.get_all_study_names(STORAGE)


def test_a_study_never_run_cannot_be_confirmed(in_tmp):
    spec = tiny_spec(in_tmp)
    with pytest.raises(StudyError, match="droptune tune"):
        confirm(spec)


def test_a_new_best_trial_of_a_resumed_search_joins_the_confirmation(in_tmp):
    spec, search = searched(in_tmp, n_trials=3)
    first = confirm(spec, top=1, seeds=2)
    add_trial(search, {"input_dropout": 0.05, "dropout": 0.05}, -1.0,  # the resumed search's new best
              layer_types={"input_dropout": "input", "dropout": "dense"})
    finalists = confirm(spec, top=1, seeds=2)
    assert {f.trial for f in finalists} == {first[0].trial, 3} and all(f.n == 2 for f in finalists)
    assert len(confirm_trials()) == 4


def test_a_worker_joins_a_started_confirmation_and_runs_its_retrains(in_tmp):
    from droptune.cli import main
    from droptune.tuning._confirm import start_confirmation

    spec, search = searched(in_tmp)
    start_confirmation(spec, top=2, seeds=2)  # the plan and the parent run; no retrain yet
    assert confirm_trials(None) == []

    assert main(["worker", "tiny.yaml", "--confirm", "--quiet"]) == 0

    done = confirm_trials()
    top = [t.number for t in rank_trials(search)[:2]]
    assert sorted((t.user_attrs[CONFIRM_ORIGIN_ATTR], t.user_attrs[CONFIRM_INDEX_ATTR]) for t in done) == sorted(
        (n, i) for n in top for i in range(2)
    )
    finalists = confirm(spec, top=2, seeds=2)  # the worker did every retrain: this only summarises
    assert len(confirm_trials(None)) == 4
    assert sorted(f.trial for f in finalists) == sorted(top) and all(f.n == 2 for f in finalists)


def test_a_worker_cannot_join_a_confirmation_never_started(in_tmp, capsys):
    from droptune.cli import main

    searched(in_tmp)
    assert main(["worker", "tiny.yaml", "--confirm", "--quiet"]) != 0
    assert "no confirmation of study 'tiny' was started" in capsys.readouterr().err


def test_the_no_dropout_and_prior_trials_are_retrained_beside_the_leaders_whatever_their_rank(in_tmp):
    spec, search = searched(in_tmp, n_trials=8)  # large enough for the no-dropout baseline
    ranked = rank_trials(search)
    baselines = {t.number: kind for t in ranked if (kind := baseline_kind(t))}
    assert sorted(baselines.values()) == ["no_dropout", "prior"]
    assert set(baselines) - {ranked[0].number}, "a baseline must rank below the leader for this test to mean anything"
    finalists = confirm(spec, top=1, seeds=2)
    assert {f.trial for f in finalists} == {ranked[0].number, *baselines}
    assert {f.trial: f.baseline for f in finalists if f.baseline} == baselines
    assert all(f.n == 2 for f in finalists)
    # ranked by the retrains' mean, the baselines with the rest: what export keeps is the best mean
    assert [f.value_mean for f in finalists] == sorted(f.value_mean for f in finalists)


def test_a_round_cut_short_is_left_out_so_finalists_compare_on_the_same_seeds():
    from droptune.record import GAP_ATTR
    from droptune.tuning._confirm import summarise

    search = optuna.create_study()
    for value in (0.50, 0.60):
        search.add_trial(optuna.trial.create_trial(value=value))
    confirmation = optuna.create_study()
    # trial 0 retrained with seeds 0, 1, 2; trial 1 only with seeds 0 and 1 (the deadline came)
    for origin, index, value in [(0, 0, 0.40), (1, 0, 0.45), (0, 1, 0.42), (1, 1, 0.47), (0, 2, 0.10)]:
        confirmation.add_trial(optuna.trial.create_trial(value=value, user_attrs={
            CONFIRM_ORIGIN_ATTR: origin, CONFIRM_INDEX_ATTR: index, GAP_ATTR: 0.01}))
    finalists = summarise(confirmation, search)
    assert [(f.trial, f.n) for f in finalists] == [(0, 2), (1, 2)]
    assert finalists[0].value_mean == pytest.approx(0.41)  # seed 2's lucky 0.10 is not counted
    assert finalists[1].value_mean == pytest.approx(0.46)
