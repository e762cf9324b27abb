"""OffloadedTracker: trial runs written by a child process, none lost, errors not swallowed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
from mlflow.tracking import MlflowClient

from droptune.config import spec_from_dict
from droptune.exceptions import StudyError
from droptune.record import REASON_TAG, STATE_TAG, TRIAL_TAG
from droptune.tracking import MlflowTracker, OffloadedTracker, Tracker, tracker_for
from droptune.tracking._choose import offload_pays
from droptune.tracking._offload import ORPHAN_REASON


@pytest.fixture
def tracking_uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def trial_runs(tracking_uri: str, experiment: str) -> dict[int, object]:
    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], filter_string="tags.`droptune.role` = 'trial'")
    return {int(r.data.tags[TRIAL_TAG]): r for r in runs}


def history(tracking_uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in MlflowClient(tracking_uri=tracking_uri).get_metric_history(run_id, key))


def test_every_trial_write_is_in_mlflow_once_flush_returns(tracking_uri):
    tracker = OffloadedTracker(tracking_uri=tracking_uri, experiment="offloaded")
    assert isinstance(tracker, Tracker)
    parent = tracker.study_run()
    handles = [tracker.start_trial(parent, n, {"rate.fc": str(n / 10)}) for n in range(3)]
    for epoch in range(4):
        for n, handle in enumerate(handles):
            tracker.log_epoch(handle, epoch, {"epoch": float(epoch), "val_loss": n + epoch / 10})
    tracker.end_trial(handles[0], "complete", summary={"best_val_loss": 0.0})
    tracker.end_trial(handles[1], "pruned", reason="pruned at epoch 3")
    tracker.flush()

    runs = trial_runs(tracking_uri, "offloaded")
    assert sorted(runs) == [0, 1, 2]
    assert [runs[n].info.status for n in range(3)] == ["FINISHED", "KILLED", "RUNNING"]
    assert runs[1].data.tags[REASON_TAG] == "pruned at epoch 3" and runs[0].data.metrics["best_val_loss"] == 0.0
    assert runs[2].data.params == {"rate.fc": "0.2"}
    for n in range(3):  # the open run's epochs too: flush writes what the child buffers
        assert history(tracking_uri, runs[n].info.run_id, "val_loss") == [
            (e, pytest.approx(n + e / 10)) for e in range(4)]
    tracker.end_trial(handles[2], "failed", reason="stopped")
    tracker.end_study(parent)  # writes the rest and stops the child
    assert trial_runs(tracking_uri, "offloaded")[2].data.tags[STATE_TAG] == "failed"
    assert MlflowClient(tracking_uri=tracking_uri).get_run(parent).info.status == "FINISHED"


def test_a_write_that_fails_in_the_child_is_raised_here(tracking_uri):
    tracker = OffloadedTracker(tracking_uri=tracking_uri, experiment="failing")
    parent = tracker.study_run()
    handle = tracker.start_trial(parent, 0, {})
    tracker.end_trial(handle, "no-such-state")  # MLflow has no status for it: the child's write fails
    with pytest.raises(StudyError, match="MLflow tracking failed in the writer process"):
        tracker.flush()
    tracker.close()


@pytest.mark.parametrize("ending", ["os._exit(0)", "pass"], ids=["dies", "returns"])
def test_a_script_without_a_main_guard_loses_no_run(tracking_uri, tmp_path, ending):
    # A user's plain script (no `if __name__ == "__main__"`: the writer must not re-run it)
    # logs two epochs of a trial, then dies without a flush (as on SIGKILL) or just returns.
    script = tmp_path / "user_script.py"
    script.write_text(textwrap.dedent(f"""
        import os
        from droptune.tracking import OffloadedTracker
        tracker = OffloadedTracker(tracking_uri={tracking_uri!r}, experiment="orphaned")
        handle = tracker.start_trial(tracker.study_run(), 7, {{}})
        tracker.log_epoch(handle, 0, {{"val_loss": 2.0}})
        tracker.log_epoch(handle, 1, {{"val_loss": 1.5}})
        print(tracker._child.process.pid, flush=True)
        {ending}
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr
    writer = int(done.stdout.split()[-1])
    deadline = time.monotonic() + 60
    while _alive(writer):  # the writer ends once it has written what it was sent
        assert time.monotonic() < deadline, "the writer process did not exit after its parent"
        time.sleep(0.05)

    (run,) = trial_runs(tracking_uri, "orphaned").values()
    assert history(tracking_uri, run.info.run_id, "val_loss") == [(0, 2.0), (1, 1.5)]
    if ending == "pass":  # a normal exit flushes; the trial was never ended, so its run stays open
        assert run.info.status == "RUNNING"
    else:  # the writer closes what a dead parent left open
        assert run.info.status == "FAILED" and run.data.tags[REASON_TAG] == ORPHAN_REASON


def test_large_packed_studies_offload_their_trial_runs_small_and_unpacked_ones_do_not(tmp_path):
    def spec(pack, n_trials=400):
        return spec_from_dict({
            "name": f"s{pack}", "model": {"class_path": "droptune.models.MLP"},
            "data": {"class_path": "droptune.data.DigitsDataModule"},
            "search": {"pack": pack, "n_trials": n_trials},
            "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        })

    assert offload_pays(spec(8)) and offload_pays(spec("auto"))
    assert not offload_pays(spec(8, n_trials=8))  # the study ends before the child has started
    assert not offload_pays(spec(1))
    offloaded = tracker_for(spec(8))
    assert type(offloaded) is OffloadedTracker
    assert type(offloaded.tracker) is MlflowTracker  # it wraps the registered tracker, in this process
    assert type(tracker_for(spec(8, n_trials=8))) is MlflowTracker
    assert type(tracker_for(spec(1))) is MlflowTracker


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent, which is gone) counts as exited.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def test_a_packed_study_closes_every_run_and_a_resume_closes_runs_a_kill_left_open(in_tmp, monkeypatch):
    from droptune.cli import main

    # A study this small writes in process (offload_pays); this test is about the writer process.
    monkeypatch.setattr("droptune.tracking._choose.offload_pays", lambda spec: True)
    from droptune.config import load_config
    from droptune.tuning import prepare_study

    study_file = in_tmp / "packed.yaml"
    study_file.write_text(textwrap.dedent("""\
        name: packed
        model: {class_path: droptune.testing.TinyModule}
        data: {class_path: droptune.testing.TinyDataModule}
        search: {n_trials: 4, pack: 2, sampler: random, pruner: none}
        trainer: {max_epochs: 2, early_stopping_patience: null, accelerator: cpu}
        """))
    assert main(["tune", str(study_file)]) == 0
    uri = f"sqlite:///{in_tmp / 'mlruns' / 'mlflow.db'}"  # absolute: MLflow caches engines by URI
    runs = trial_runs(uri, "packed")
    assert sorted(runs) == [0, 1, 2, 3] and {r.info.status for r in runs.values()} == {"FINISHED"}
    assert all(len(history(uri, r.info.run_id, "val_loss")) == 2 for r in runs.values())

    # A kill -9 of the worker and its writer took trial 2's queued end with it: its run stays open.
    MlflowClient(tracking_uri=uri).update_run(runs[2].info.run_id, status="RUNNING")
    prepare_study(load_config(study_file)).tracker.close()
    reopened = trial_runs(uri, "packed")[2]
    assert reopened.info.status == "FINISHED" and reopened.data.tags[STATE_TAG] == "complete"
    assert "stopped before the run was closed" in reopened.data.tags[REASON_TAG]


def test_close_finished_runs_closes_only_ended_trials(tracking_uri):
    tracker = MlflowTracker(tracking_uri=tracking_uri, experiment="repair")
    parent = tracker.study_run()
    ids = [tracker.start_trial(parent, n, {}) for n in range(3)]
    assert tracker.close_finished_runs(parent, {0: "complete", 1: "pruned", 5: "failed"}) == 2
    client = MlflowClient(tracking_uri=tracking_uri)
    assert [client.get_run(i).info.status for i in ids] == ["FINISHED", "KILLED", "RUNNING"]


def test_the_request_pipe_holds_two_populations_of_messages(tracking_uri):
    fcntl = pytest.importorskip("fcntl")
    from droptune.tracking._offload import PIPE_BYTES

    with open("/proc/sys/fs/pipe-max-size") as limit:
        if int(limit.read()) < PIPE_BYTES:
            pytest.skip("this system caps pipes below PIPE_BYTES")
    tracker = OffloadedTracker(tracking_uri=tracking_uri, experiment="wide")
    tracker.start_trial(tracker.study_run(), 0, {})
    assert fcntl.fcntl(tracker._child.requests.fileno(), fcntl.F_GETPIPE_SZ) == PIPE_BYTES
    tracker.close()
