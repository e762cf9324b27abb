"""BatchedJournalStorage: a trial's writes appended together, in order, readable by everyone."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from droptune.config import ObjectiveSpec
from droptune.record import TrialResult
from droptune.stores._journal import BatchedJournalStorage, write_batch
from droptune.tracking import NullTracker
from droptune.tuning._recorder import TrialRecorder


@pytest.fixture
def journal(tmp_path):
    return tmp_path / "study.journal"


def counted(storage: BatchedJournalStorage) -> list[int]:
    """Record the number of entries of every append the storage makes to its file."""
    appends: list[int] = []
    append = storage._backend.append_logs

    def spy(logs):
        appends.append(len(logs))
        append(logs)

    storage._backend.append_logs = spy
    return appends


def reread(journal) -> optuna.trial.FrozenTrial:
    """The study's only trial as a fresh process reads it from the file."""
    study = optuna.load_study(study_name="s", storage=BatchedJournalStorage(str(journal)))
    (trial,) = study.get_trials()
    return trial


def test_a_batch_appends_a_trials_writes_once_and_everyone_reads_them(journal):
    storage = BatchedJournalStorage(str(journal))
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    appends = counted(storage)

    with storage.batch():
        x = trial.suggest_float("x", 0.0, 1.0)
        for step in range(5):
            trial.report(float(step), step)
        trial.set_user_attr("a", 1)
        trial.set_user_attr("b", [1, 2])
        assert appends == []  # nothing reaches the file inside the batch ...
        assert reread(journal).intermediate_values == {}
    assert appends == [8]  # ... then one append: 1 parameter, 5 reports, 2 attributes

    seen = reread(journal)
    assert seen.params == {"x": x} and seen.intermediate_values == {s: float(s) for s in range(5)}
    assert seen.user_attrs == {"a": 1, "b": [1, 2]}
    assert storage.get_trial(trial._trial_id).intermediate_values == seen.intermediate_values  # and this process


def test_a_tell_inside_a_batch_writes_the_batch_first(journal):
    storage = BatchedJournalStorage(str(journal))
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()

    with storage.batch():
        trial.report(0.5, 0)
        trial.set_user_attr("k", "v")
        study.tell(trial, 0.25)  # the report and attribute must be in the file before the trial ends
        assert reread(journal).state == TrialState.COMPLETE

    seen = reread(journal)
    assert seen.value == 0.25 and seen.intermediate_values == {0: 0.5} and seen.user_attrs == {"k": "v"}


def test_a_batch_left_by_an_exception_is_still_written(journal):
    storage = BatchedJournalStorage(str(journal))
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()

    with pytest.raises(RuntimeError), storage.batch():
        trial.report(1.5, 0)
        raise RuntimeError("training failed")

    assert reread(journal).intermediate_values == {0: 1.5}


def test_writes_to_a_trial_another_process_finished_are_dropped_not_raised(journal):
    storage = BatchedJournalStorage(str(journal))
    study = optuna.create_study(study_name="s", storage=storage)
    mine, theirs = study.ask(), study.ask()
    other = BatchedJournalStorage(str(journal))  # another worker fails `theirs` meanwhile
    other.set_trial_state_values(theirs._trial_id, TrialState.FAIL)

    with storage.batch():
        theirs.report(9.0, 0)
        mine.report(1.0, 0)

    trials = {t.number: t for t in optuna.load_study(study_name="s", storage=other).get_trials()}
    assert trials[mine.number].intermediate_values == {0: 1.0}  # the write after the dropped one landed
    assert trials[theirs.number].intermediate_values == {} and trials[theirs.number].state == TrialState.FAIL


def test_batches_nest_and_other_storages_get_no_batch(journal, tmp_path):
    storage = BatchedJournalStorage(str(journal))
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    appends = counted(storage)
    with write_batch(storage), write_batch(storage):
        trial.report(1.0, 0)
    trial.report(2.0, 1)  # outside a batch: written at once, as Optuna writes it
    assert appends == [1, 1]

    sqlite = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}")
    other = sqlite.ask()
    with write_batch(sqlite._storage):
        other.report(3.0, 0)
    assert sqlite.trials[0].intermediate_values == {0: 3.0}


def test_the_recorder_writes_a_populations_epoch_in_one_append(journal):
    storage = BatchedJournalStorage(str(journal))
    study = optuna.create_study(study_name="s", storage=storage)
    recorder = TrialRecorder(study=study, tracker=NullTracker(), parent_run_id="p", objective=ObjectiveSpec())
    trials = [study.ask() for _ in range(6)]
    for trial in trials:
        recorder.open(trial, {"drop": 0.1}, {"drop": "dense"})
    recorder.drain()
    appends = counted(storage)

    recorder.epochs([(t, 0, {"val_loss": 1.0 + i, "train_loss": 0.5}, True) for i, t in enumerate(trials)])
    recorder.drain()
    assert appends == [6]

    for i, trial in enumerate(trials):
        recorder.close(trial, TrialResult(state="complete", value=1.0 + i, history=[{"epoch": 0.0, "val_loss": 1.0 + i}]))
    recorder.shutdown()
    done = optuna.load_study(study_name="s", storage=BatchedJournalStorage(str(journal))).get_trials()
    assert [t.intermediate_values for t in done] == [{0: 1.0 + i} for i in range(6)]
    assert all(t.state == TrialState.COMPLETE for t in done)
