"""BatchedRDBStorage: a thread's trial reports and attributes committed in one transaction."""

from __future__ import annotations

import pickle
from pathlib import Path

import optuna
import pytest
import sqlalchemy

from droptune.stores import make_storage
from droptune.stores._journal import write_batch
from droptune.stores._rdb_batch import BatchedRDBStorage


def _study(tmp_path: Path) -> tuple[optuna.Study, str]:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    return optuna.create_study(study_name="s", storage=make_storage(url)), url


def _read(url: str) -> optuna.trial.FrozenTrial:
    return optuna.load_study(study_name="s", storage=url).trials[0]


def test_the_default_sqlite_storage_batches(tmp_path: Path) -> None:
    study, _ = _study(tmp_path)
    assert isinstance(study._storage._backend, BatchedRDBStorage)  # type: ignore[attr-defined]


def test_a_batch_commits_once_and_other_readers_see_it_whole_at_its_end(tmp_path: Path) -> None:
    study, url = _study(tmp_path)
    trial = study.ask()
    commits: list[int] = []
    engine = study._storage._backend.engine  # type: ignore[attr-defined]
    sqlalchemy.event.listen(engine, "commit", lambda conn: commits.append(1))
    with write_batch(trial.storage):
        trial.set_user_attr("rates", {"fc": 0.5})
        for step in range(5):
            trial.report(1.0 / (step + 1), step)
        trial.storage.set_trial_system_attr(trial._trial_id, "beat", 1)
        assert _read(url).user_attrs == {} and _read(url).intermediate_values == {}
    assert len(commits) == 1
    seen = _read(url)
    assert seen.user_attrs == {"rates": {"fc": 0.5}} and seen.system_attrs["beat"] == 1
    assert seen.intermediate_values == {s: 1.0 / (s + 1) for s in range(5)}


def test_outside_a_batch_each_write_commits_at_once(tmp_path: Path) -> None:
    study, url = _study(tmp_path)
    trial = study.ask()
    trial.set_user_attr("a", 1)
    assert _read(url).user_attrs == {"a": 1}


def test_a_write_to_a_trial_finished_meanwhile_is_dropped_the_rest_kept(tmp_path: Path) -> None:
    study, url = _study(tmp_path)
    alive, failed = study.ask(), study.ask()
    other = optuna.load_study(study_name="s", storage=url)  # another worker fails the second trial
    with write_batch(alive.storage):
        alive.set_user_attr("a", 1)
        failed.set_user_attr("b", 2)
        other.tell(failed.number, state=optuna.trial.TrialState.FAIL)
        alive.report(0.5, 0)
    first, second = optuna.load_study(study_name="s", storage=url).trials
    assert first.user_attrs == {"a": 1} and first.intermediate_values == {0: 0.5}
    assert second.user_attrs == {} and second.state == optuna.trial.TrialState.FAIL


def test_a_batch_left_by_an_exception_is_still_written(tmp_path: Path) -> None:
    study, url = _study(tmp_path)
    trial = study.ask()
    with pytest.raises(RuntimeError), write_batch(trial.storage):
        trial.set_user_attr("a", 1)
        raise RuntimeError("training failed")
    assert _read(url).user_attrs == {"a": 1}


def test_the_storage_pickles(tmp_path: Path) -> None:
    study, url = _study(tmp_path)
    copy = pickle.loads(pickle.dumps(study._storage._backend))  # type: ignore[attr-defined]
    trial_id = copy.create_new_trial(copy.get_study_id_from_name("s"))
    with copy.batch():
        copy.set_trial_user_attr(trial_id, "a", 1)
    assert _read(url).user_attrs == {"a": 1}
