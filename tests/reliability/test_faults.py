"""Faults, with real processes: SIGTERM mid-trial (what Slurm and Kubernetes send), a job
array started by docs/slurm.sh with one task terminated, two first starts at once on fresh
stores, and failed starts that must leave no half-made store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _reliability_kit import VALID, snapshot, write
from _workers_kit import load_trials, mlflow_runs, poll
from optuna.trial import TrialState

from droptune.cli import main
from droptune.stores._lock import store_lock
from droptune.stores._urls import sqlite_file

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SLURM = REPO / "docs" / "slurm.sh"
WAIT_S = 120  # generous bounds on process exits; never a measure of speed
ARRAY = VALID.replace("droptune.testing.TinyModule", "_bad_models.ArrayTinyModule")
RUN_STATUS = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED", TrialState.FAIL: "FAILED"}


@pytest.fixture
def spawn(project: Path):  # type: ignore[no-untyped-def]
    """``spawn(argv, name, **env)``: start a process in the project, logging to ``<name>.log``;
    any still running when the test ends (failed) is killed."""
    started: list[subprocess.Popen] = []

    def start(argv: list[str], name: str, **extra: str) -> subprocess.Popen:
        with (project.parent / f"{name}.log").open("w") as log:
            process = subprocess.Popen(argv, cwd=project, stdout=log, stderr=subprocess.STDOUT, env=env(**extra))
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def logs(project: Path) -> str:
    """Every process log of the test, for failure messages."""
    return "\n".join(f"--- {p.name}\n{p.read_text()}" for p in sorted(project.parent.glob("*.log")))


def stores(project: Path) -> tuple[str, str]:
    """The default stores of a study file in ``project`` (its project folder)."""
    return f"sqlite:///{project.resolve()}/studies/droptune.db", f"sqlite:///{project.resolve()}/mlruns/mlflow.db"


def env(**extra: str) -> dict[str, str]:
    """A subprocess environment that imports the test models, one thread per process."""
    variables = dict(os.environ)
    paths = [str(HERE), str(HERE.parent / "tuning"), variables.get("PYTHONPATH", "")]
    variables.update(PYTHONPATH=os.pathsep.join(filter(None, paths)), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    variables.update(extra)
    return variables


def running_in(storage: str, name: str, pid: int) -> bool:
    """Whether process ``pid`` has a RUNNING trial in the study (the stores may not exist yet)."""
    with store_lock(storage):  # never open the database while droptune creates it
        if not sqlite_file(storage).exists():
            return False
        try:
            trials = load_trials(name, storage)
        except KeyError:  # the study is not created yet
            return False
    return any(t.state == TrialState.RUNNING and t.user_attrs.get("worker", "").endswith(f":{pid}") for t in trials)


def assert_closed_and_matching(name: str, storage: str, tracking: str) -> list:
    """No trial left RUNNING, one MLflow run per trial, each closed with its trial's status."""
    trials = load_trials(name, storage)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    _, children = mlflow_runs(name, tracking)
    by_number = {int(r.data.tags["droptune.trial_number"]): r for r in children}
    assert len(by_number) == len(children) == len(trials)  # none lost, none duplicated
    assert {n: r.info.status for n, r in by_number.items()} == {t.number: RUN_STATUS[t.state] for t in trials}
    return trials


@pytest.mark.slow  # real droptune processes: tens of seconds on 2 cores
def test_sigterm_fails_the_running_trial_and_the_same_command_resumes(project, spawn):
    write(project, ARRAY.replace("n_trials: 2", "n_trials: 3"))
    storage, tracking = stores(project)
    process = spawn([sys.executable, "-m", "droptune", "tune", "study.yaml"], "tune", DROPTUNE_TEST_HANG="1")
    poll(lambda: running_in(storage, "tiny", process.pid), timeout=WAIT_S, what="a trial training")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=WAIT_S) == 130, logs(project)
    assert "interrupted: the running trial was recorded as failed" in (project.parent / "tune.log").read_text()

    trials = assert_closed_and_matching("tiny", storage, tracking)
    assert [t.state for t in trials] == [TrialState.FAIL]
    assert trials[0].user_attrs["fail_reason"].startswith("terminated by SIGTERM")
    parents, children = mlflow_runs("tiny", tracking)
    assert [p.info.status for p in parents] == ["KILLED"]
    assert children[0].data.tags["droptune.reason"].startswith("terminated by SIGTERM")

    assert main(["tune", "study.yaml"]) == 0  # resumes: the terminated trial is redone
    trials = assert_closed_and_matching("tiny", storage, tracking)
    assert sorted(t.state.name for t in trials) == ["COMPLETE"] * 3 + ["FAIL"]
    parents, _ = mlflow_runs("tiny", tracking)
    assert [p.info.status for p in parents] == ["FINISHED"]


@pytest.mark.slow  # real droptune processes: tens of seconds on 2 cores
def test_job_array_script_with_one_task_terminated_loses_and_duplicates_nothing(project, spawn):
    write(project, ARRAY.replace("n_trials: 2", "n_trials: 5"))
    storage, tracking = stores(project)
    barrier = project.parent / "barrier"
    barrier.mkdir()
    common = {
        "DROPTUNE_STORAGE": storage, "DROPTUNE_TRACKING_URI": tracking, "DROPTUNE": f"{sys.executable} -m droptune",
        "DROPTUNE_POLL": "0.2", "DROPTUNE_TEST_BARRIER": str(barrier),
        "DROPTUNE_TEST_BARRIER_N": "3",
    }
    tasks = []
    for task in range(3):  # as `sbatch --array=0-2 docs/slurm.sh study.yaml` starts them
        extra = {"SLURM_ARRAY_TASK_ID": str(task), **common, **({"DROPTUNE_TEST_HANG": "1"} if task == 2 else {})}
        tasks.append(spawn(["bash", str(SLURM), "study.yaml"], f"task-{task}", **extra))

    # Task 2 (a worker) hangs in its first trial: once all 3 tasks train one, terminate it, as scancel would.
    poll(lambda: len(os.listdir(barrier)) == 3, timeout=WAIT_S, what="3 tasks training")
    assert running_in(storage, "tiny", tasks[2].pid)
    tasks[2].send_signal(signal.SIGTERM)
    assert tasks[2].wait(timeout=WAIT_S) == 130, logs(project)
    assert [t.wait(timeout=WAIT_S) for t in tasks[:2]] == [0, 0], logs(project)

    trials = assert_closed_and_matching("tiny", storage, tracking)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(complete) == 5  # exactly n_trials: the terminated one was redone, none twice
    assert len({t.user_attrs["worker"] for t in complete}) == 2  # both tasks left trained
    assert [t.user_attrs["worker"].endswith(f":{tasks[2].pid}") for t in failed] == [True]
    assert failed[0].user_attrs["fail_reason"].startswith("terminated by SIGTERM")
    parents, _ = mlflow_runs("tiny", tracking)
    assert [p.info.status for p in parents] == ["FINISHED"]


@pytest.mark.slow  # real droptune processes: tens of seconds on 2 cores
def test_two_first_starts_at_once_share_one_study(project, spawn):
    write(project, ARRAY.replace("n_trials: 2", "n_trials: 3"))
    storage, tracking = stores(project)
    barrier = project.parent / "barrier"
    barrier.mkdir()
    both = {"DROPTUNE_TEST_BARRIER": str(barrier), "DROPTUNE_TEST_BARRIER_N": "2"}  # both train at once
    starts = [spawn([sys.executable, "-m", "droptune", "tune", "study.yaml"], f"tune-{i}", **both) for i in range(2)]
    assert [p.wait(timeout=WAIT_S) for p in starts] == [0, 0], logs(project)

    trials = assert_closed_and_matching("tiny", storage, tracking)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    parents, _ = mlflow_runs("tiny", tracking)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"


def test_a_failed_first_start_leaves_no_half_made_store(project):
    from droptune.config import load_config
    from droptune.stores._create import create_stores_locked
    from droptune.tuning._lifecycle import _prepare  # the creation step, past the pre-flight

    (project / "blocker").write_text("in the way of the MLflow folder")
    before = snapshot(project.parent)
    # The Optuna storage is created, then the MLflow store cannot be: the whole start is undone.
    spec = load_config(project / "study.yaml", {"tracking_uri": "sqlite:///blocker/mlruns/mlflow.db"})
    with pytest.raises(OSError), create_stores_locked(spec):
        _prepare(spec, None)
    assert snapshot(project.parent) == before  # no studies/, no 0-byte database


def test_a_failed_start_on_an_existing_storage_removes_only_its_new_study(project):
    import optuna

    from droptune.config import load_config
    from droptune.stores._create import create_stores_locked
    from droptune.tuning._lifecycle import _prepare  # the creation step, past the pre-flight

    storage, _ = stores(project)
    (project / "studies").mkdir()
    optuna.create_study(study_name="other", storage=storage)
    (project / "blocker").write_text("in the way of the MLflow folder")
    spec = load_config(project / "study.yaml", {"tracking_uri": "sqlite:///blocker/mlruns/mlflow.db"})
    with pytest.raises(OSError), create_stores_locked(spec):
        _prepare(spec, None)
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["other"]


@pytest.mark.slow  # real droptune processes: tens of seconds on 2 cores
def test_sigterm_to_the_launcher_reaches_its_workers(project, monkeypatch):
    """Kubernetes signals only the container's PID 1: `droptune tune --workers 2` passes SIGTERM on."""
    import threading

    write(project, ARRAY.replace("n_trials: 2", "n_trials: 4"))
    storage, tracking = stores(project)
    for name, value in env(DROPTUNE_TEST_HANG="1").items():  # every trial of the workers hangs
        monkeypatch.setenv(name, value)

    def terminate() -> None:  # once both workers train, as the kubelet would
        poll(lambda: _training(storage) == 2, timeout=WAIT_S, what="2 trials training")
        os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=terminate, daemon=True)
    sender.start()
    assert main(["tune", "study.yaml", "--workers", "2"]) == 130
    sender.join(5)
    trials = assert_closed_and_matching("tiny", storage, tracking)
    assert [t.state for t in trials] == [TrialState.FAIL] * 2
    assert all(t.user_attrs["fail_reason"].startswith("terminated by SIGTERM") for t in trials)
    parents, _ = mlflow_runs("tiny", tracking)
    assert [p.info.status for p in parents] == ["KILLED"]


def _training(storage: str) -> int:
    """Trials RUNNING in the study (0 while the stores are being created)."""
    with store_lock(storage):
        if not sqlite_file(storage).exists():
            return 0
        try:
            return sum(t.state == TrialState.RUNNING for t in load_trials("tiny", storage))
        except KeyError:
            return 0


@pytest.mark.slow  # 4 worker processes, 64 trials: about a minute on 2 cores
def test_four_workers_run_64_trials_none_lost_or_duplicated(project, monkeypatch):
    write(project, VALID.replace("n_trials: 2", "n_trials: 64").replace(
        "{class_path: droptune.testing.TinyDataModule}", "{class_path: droptune.testing.TinyDataModule, init_args: {n_train: 32, n_val: 16}}"
    ))
    storage, tracking = stores(project)
    for name, value in env().items():
        monkeypatch.setenv(name, value)
    assert main(["tune", "study.yaml", "--workers", "4", "--no-confirm"]) == 0  # 64 searched trials
    trials = assert_closed_and_matching("tiny", storage, tracking)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 64
    assert sorted(t.number for t in trials) == list(range(64))
    assert len({t.user_attrs["worker"] for t in trials}) == 4
    parents, _ = mlflow_runs("tiny", tracking)
    assert [p.info.status for p in parents] == ["FINISHED"]
