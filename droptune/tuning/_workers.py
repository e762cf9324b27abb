"""Worker processes on this machine: ``droptune tune STUDY --workers K``.

The launching process prepares the study (Optuna study, MLflow experiment, parent run),
then starts K processes running ``python -m droptune worker STUDY ...``; they share the
study through its storage exactly as workers on other machines do. With GPUs, worker i sees
one device through ``CUDA_VISIBLE_DEVICES`` (round robin over the visible ones, at most
``workers_per_gpu`` per device). Each worker writes its log to
``<storage folder>/logs/<study>/worker-<i>-<launcher pid>.log`` (``logs/<study>/`` for server
storages): two launchers on one study (two machines, or a second terminal) write files of their
own rather than truncating each other's. The logs are attached to the parent run at the end.

The launcher only supervises: it updates the progress bar, forwards Ctrl-C (SIGINT) to the
workers, waits for them to close their trials (at most :data:`STOP_GRACE_S` seconds), kills
the stragglers and fails their trials (retried by the next run), then closes the parent run.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna

from droptune.config import StudySpec
from droptune.exceptions import ConfigError, StudyError
from droptune.stores._urls import store_file
from droptune.tuning._heartbeat import reap_dead_trials
from droptune.tuning._lifecycle import StudyLifecycle, prepare_study
from droptune.tuning._scheduler import Counts, count_trials

log = logging.getLogger(__name__)

STOP_GRACE_S = 30.0  # after SIGINT, how long workers get to close their running trials
POLL_S = 1.0  # how often the launcher refreshes the progress bar
GPU_ACCELERATORS = ("auto", "gpu", "cuda")


@dataclass
class WorkerProcess:
    """One worker started by the launcher."""

    index: int
    process: subprocess.Popen
    log_path: Path
    device: str | None

    def tail(self, lines: int = 15) -> str:
        """The last lines of the worker's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def visible_devices(accelerator: str) -> list[str]:
    """CUDA devices the workers may use: ``CUDA_VISIBLE_DEVICES`` if set, else all; none on CPU."""
    if accelerator not in GPU_ACCELERATORS:
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        devices = [d.strip() for d in listed.split(",") if d.strip()]
        return devices[: devices.index("-1")] if "-1" in devices else devices
    import torch

    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def assign_devices(n_workers: int, devices: Sequence[str], workers_per_gpu: int | None = None) -> list[str | None]:
    """The device each worker sees: round robin over ``devices``; None for all without GPUs.

    Raises:
        ConfigError: If ``workers_per_gpu`` caps the devices below ``n_workers`` workers.

    Example:
        >>> assign_devices(3, ["0", "1"])
        ['0', '1', '0']
        >>> assign_devices(2, [])
        [None, None]
    """
    if not devices:
        return [None] * n_workers
    if workers_per_gpu is not None and n_workers > len(devices) * workers_per_gpu:
        raise ConfigError(
            f"{n_workers} workers need {-(-n_workers // workers_per_gpu)} GPUs at {workers_per_gpu} per GPU; "
            f"{len(devices)} visible ({', '.join(devices)}). Lower --workers or raise --workers-per-gpu."
        )
    return [devices[i % len(devices)] for i in range(n_workers)]


def worker_env(device: str | None, n_workers: int) -> dict[str, str]:
    """A worker's environment: its device, and a fair share of CPU threads unless the user set one."""
    env = dict(os.environ)
    if device is not None:
        env["CUDA_VISIBLE_DEVICES"] = device
    threads = str(max(1, (os.cpu_count() or 1) // n_workers))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(name, threads)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def log_dir(spec: StudySpec) -> Path:
    """Where workers write their logs: beside a SQLite or journal storage, else ``logs/<study>``."""
    database = store_file(spec.storage)
    base = database.parent if database is not None else Path()
    return base / "logs" / "".join(c if c.isalnum() or c in "-_." else "_" for c in spec.name)


def start_workers(spec: StudySpec, worker_args: Sequence[str]) -> list[WorkerProcess]:
    """Start ``spec.search.workers`` processes of ``droptune worker`` with ``worker_args``."""
    n_workers = spec.search.workers
    devices = assign_devices(n_workers, visible_devices(spec.trainer.accelerator), spec.search.workers_per_gpu)
    folder = log_dir(spec)
    folder.mkdir(parents=True, exist_ok=True)
    workers = []
    for index, device in enumerate(devices):
        command = [sys.executable, "-m", "droptune", "worker", *worker_args, "--worker-index", str(index), "--quiet"]
        path = folder / f"worker-{index}-{os.getpid()}.log"  # this launcher's: another's are left whole
        with path.open("w") as log_file:
            # A session of its own: Ctrl-C in the terminal reaches the launcher only, which forwards it once.
            process = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT, env=worker_env(device, n_workers),
                start_new_session=True,
            )
        workers.append(WorkerProcess(index, process, path, device))
        log.info("worker %d: pid %d%s, log %s", index, process.pid, f", GPU {device}" if device else "", path)
    return workers


def wait_workers(workers: Sequence[WorkerProcess], study: optuna.Study, progress: Callable | None) -> None:
    """Wait until every worker has exited, refreshing the progress bar."""
    reported: set[int] = set()
    while True:
        alive = [w for w in workers if w.process.poll() is None]
        for worker in workers:
            code = worker.process.returncode
            if code not in (None, 0) and worker.index not in reported:
                reported.add(worker.index)
                log.warning("worker %d exited with code %s; see %s", worker.index, code, worker.log_path)
        if progress is not None:
            progress(study)
        if not alive:
            return
        try:
            alive[0].process.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            pass


def stop_workers(workers: Sequence[WorkerProcess], grace: float = STOP_GRACE_S) -> None:
    """SIGINT every running worker, wait up to ``grace`` seconds in all, then SIGKILL the rest."""
    from droptune._signals import terminated  # SIGTERM (Kubernetes: PID 1 only) is passed on

    stop = signal.SIGTERM if terminated() else signal.SIGINT
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.send_signal(stop)
    end = time.monotonic() + grace
    try:
        for worker in workers:
            try:
                worker.process.wait(timeout=max(0.0, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
    except KeyboardInterrupt:  # a second Ctrl-C: do not wait any longer
        pass
    for worker in workers:
        if worker.process.poll() is None:
            log.warning("worker %d did not stop within %.0f s: killing it", worker.index, grace)
            worker.process.kill()
            worker.process.wait()


def tune_parallel(
    spec: StudySpec,
    worker_args: Sequence[str],
    *,
    progress: Callable[[optuna.Study], None] | None = None,
    prepared: StudyLifecycle | None = None,
) -> optuna.Study:
    """Run a study with ``spec.search.workers`` worker processes on this machine, then close it.

    Args:
        spec: The study.
        worker_args: Arguments of ``droptune worker`` for this study (the study file and the
            command line's overrides, see ``droptune.commands._worker.worker_args``).
        progress: Called with the study every second while the workers run.
        prepared: What :func:`prepare_study` returned, if it was called already.

    Returns:
        The study.

    Raises:
        StudyError: If the workers stopped before the study held ``n_trials`` finished trials
            (the message shows the end of a failed worker's log).
        KeyboardInterrupt: On Ctrl-C, once the workers have stopped and the study is closed.
    """
    lifecycle = prepared or prepare_study(spec)
    started = time.monotonic()
    workers = start_workers(spec, worker_args)
    try:
        wait_workers(workers, lifecycle.study, progress)
    except BaseException:
        stop_workers(workers)
        _collect(lifecycle, workers)
        lifecycle.finish(status="KILLED")
        raise
    counts = _collect(lifecycle, workers)
    timed_out = spec.search.timeout is not None and time.monotonic() - started >= spec.search.timeout
    if counts.finished < spec.search.n_trials and not timed_out:
        lifecycle.finish(status="KILLED")
        raise StudyError(_stopped_early(spec, counts.finished, workers))
    lifecycle.finish()
    return lifecycle.study


def _collect(lifecycle: StudyLifecycle, workers: Sequence[WorkerProcess]) -> Counts:
    """Fail what dead workers left running and attach their logs to the parent run."""
    study, tracker, parent = lifecycle.study, lifecycle.tracker, lifecycle.parent_run_id
    reap_dead_trials(study, tracker=tracker, parent_run_id=parent)
    for worker in workers:
        try:
            tracker.log_artifact(parent, worker.log_path, "workers")
        except Exception:  # the log stays on disk; tracking must not hide the study's outcome
            log.debug("could not attach %s", worker.log_path, exc_info=True)
    return count_trials(study)


def _stopped_early(spec: StudySpec, finished: int, workers: Sequence[WorkerProcess]) -> str:
    failed = [w for w in workers if w.process.returncode not in (0, None)] or list(workers)
    worst = failed[0]
    return (
        f"the {len(workers)} workers of study {spec.name!r} stopped with {finished} of {spec.search.n_trials} "
        f"trials finished; worker {worst.index} exited with code {worst.process.returncode}. "
        f"Its log {worst.log_path} ends with:\n{worst.tail()}\nFix the cause, then run the same command to resume."
    )
