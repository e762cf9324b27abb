"""Terminal feedback while ``droptune tune`` runs: one line per finished trial, a bar, an ETA.

On a terminal, each finished trial prints a line above a live progress bar that shows
the counts, the best value and the time left, and under the bar a line redrawn at each
epoch of the running trial (its epoch, ``val_loss`` and gap: :mod:`droptune.commands._live`).
When stderr is not a terminal (CI, nohup, a log file), there is no bar: the same trial
lines, a plain status line at least every :data:`PERIOD_S` seconds, and the epoch line
when an epoch ends at least :data:`EPOCH_LINE_S` seconds after the last line printed (so a
study of short trials prints no epoch lines, and a long trial about one every 10 s at
most, one per epoch at most).

The time left is estimated from the epochs done (a running trial at epoch 4 of 30 counts
for 4/30 of a trial), re-estimated at each epoch and counted down in between: it does not
grow while a trial runs.

The update function is called by the engine after each trial, possibly from another
thread (its bookkeeping thread), and by ``tune --workers`` every few seconds; the epoch
function by the training loop (or the recorder's thread): both are thread-safe and cheap.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn

from droptune.commands._live import EpochTap, EtaColumn, LiveBar, LiveTrials
from droptune.commands._terminal import say
from droptune.record import EPOCHS_ATTR, GAP_ATTR, REASON_ATTR, type_rates

PERIOD_S = 30.0
EPOCH_LINE_S = 10.0  # off a terminal, an epoch line only this long after the last line printed
ENDED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)  # each gets a line
# What counts toward n_trials: a failed trial is redone, so it is not one of them.
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class TrialProgress:
    """Feedback for one study; call :meth:`update` with the study whenever trials may have ended.

    Args:
        name: The study's name (the bar's label).
        total: Finished trials the study should hold (``n_trials``).
        console: Where to write (stderr's console in the CLI); a bar only if it is a terminal.
        metric: Name of the objective, for the trial lines.
        period_s: Seconds between status lines when not on a terminal.
        max_epochs: Epochs a trial trains at most (the ETA counts a running trial's epochs).
        epoch_line_s: Off a terminal, an ended epoch prints a line only this many seconds
            after the last line printed (default :data:`EPOCH_LINE_S`).
        poll: Read the running trials' epochs from the study at each :meth:`update` (the
            launcher of ``tune --workers``, whose trials run in other processes: their
            reported objective, without the gap), instead of being told by :meth:`epoch`.
        clock: Seconds, monotonic (a test passes its own).
    """

    def __init__(
        self,
        *,
        name: str,
        total: int,
        console: Console,
        metric: str = "objective",
        period_s: float = PERIOD_S,
        max_epochs: int | None = None,
        epoch_line_s: float | None = None,
        poll: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name, self.total, self.console, self.metric = name, total, console, metric
        self.period_s, self.poll, self.clock = period_s, poll, clock
        self.epoch_line_s = EPOCH_LINE_S if epoch_line_s is None else epoch_line_s
        self.live = LiveTrials(max_epochs=max_epochs, metric=metric)
        self._estimate: tuple[float, float] | None = None  # (seconds left, when estimated)
        self._lock = threading.RLock()
        self._seen: set[int] = set()
        self._started = clock()
        self._finished_before = 0
        self._counts = (0, 0, 0, 0)  # finished, complete, pruned, failed
        self._best = "-"
        self._maximize = False
        self._last_status = self._last_line = self._started
        self._bar: LiveBar | None = None
        self._task: TaskID | None = None

    def start(self, study: optuna.Study) -> None:
        """Count the trials finished before this run (a resumed study) and open the bar."""
        with self._lock:
            self._maximize = self.live.maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
            ended = study.get_trials(deepcopy=False, states=ENDED)
            self._seen = {t.number for t in ended}
            done = [t for t in ended if t.state in FINISHED]
            self._count(ended)
            self._finished_before = self._counts[0]
            if done:
                self._print(resume_line(self.name, len(done), self.total))
            if self.console.is_terminal:
                self._bar = LiveBar(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("pruned {task.fields[pruned]} · failed {task.fields[failed]} · best {task.fields[best]}"),
                    TimeElapsedColumn(),
                    EtaColumn(self.eta),
                    console=self.console,
                    transient=False,
                )
                self._bar.start()
                self._task = self._bar.add_task(self.name, total=self.total, pruned=0, failed=0, best="-")
                self._show()

    def update(self, study: optuna.Study) -> None:
        """Print a line per trial finished since the last call; move the bar (or print a status)."""
        with self._lock:
            # One read of the study: each read re-fetches every running trial from the storage.
            trials = study.get_trials(deepcopy=False, states=ENDED + ((TrialState.RUNNING,) if self.poll else ()))
            ended = [t for t in trials if t.state in ENDED]
            new = [t for t in ended if t.number not in self._seen]
            for trial in new:  # get_trials sorts by number
                self._seen.add(trial.number)
                self._print(trial_line(trial, self.metric))
            if new:
                self.live.drop(t.number for t in new)
                self._count(ended)
                self._estimate_eta()
            if self.poll and self.live.follow([t for t in trials if t.state == TrialState.RUNNING]):
                self._show_epoch()  # a worker process's trial reported an epoch
            self._show()
            if self._bar is None and new and self.clock() - self._last_status >= self.period_s:
                self.tick()

    def epoch(self, number: int, epoch: int, metrics: Mapping[str, float]) -> None:
        """Trial ``number`` ended epoch ``epoch`` (from 0): redraw the line under the bar, or print it."""
        with self._lock:
            if number in self._seen:  # already ended (a late record)
                return
            self.live.record(number, epoch, metrics)
            self._show_epoch()

    def _show_epoch(self) -> None:
        with self._lock:
            self._estimate_eta()
            if self._bar is not None:
                self._bar.live_line = self.live.line()
                self._show()
                self._bar.refresh()  # redrawn now, not at the next tick
            elif self.clock() - self._last_line >= self.epoch_line_s:
                self._print(f"{self.name}: {self.live.line()} · ETA {self.eta()}")

    def tick(self) -> None:
        """Print the status line (what the periodic timer calls when not on a terminal)."""
        with self._lock:
            self._last_status = self.clock()
            if self._bar is None:
                self._print(self.status())

    def status(self) -> str:
        """``digits-cnn: 12/40 finished (3 pruned, 0 failed) · best 0.1738 · elapsed 1:02 · ETA 2:35``."""
        finished, _, pruned, failed = self._counts
        return (
            f"{self.name}: {finished}/{self.total} finished ({pruned} pruned, {failed} failed) · best {self._best} · "
            f"elapsed {_clock(self.clock() - self._started)} · ETA {self.eta()}"
        )

    def eta(self) -> str:
        """Time left at this run's pace so far (``-`` before its first epoch ends), counting down.

        Lock-free: the bar's refresh thread calls it.
        """
        if self._counts[0] >= self.total:
            return "0:00"
        estimate = self._estimate
        if estimate is None:
            return "-"
        left, at = estimate
        return _clock(max(0.0, left - (self.clock() - at)))

    def _estimate_eta(self) -> None:
        """Re-estimate the time left from the trials and epochs done in this run (under the lock)."""
        finished, running = self._counts[0], self.live.fraction()
        done = finished - self._finished_before + running
        if done <= 0:
            self._estimate = None
            return
        now = self.clock()
        self._estimate = ((now - self._started) / done * max(0.0, self.total - finished - running), now)

    def stop(self, *, erase: bool = False) -> None:
        """Close the bar, leaving its last state on screen, or none with ``erase``.

        Args:
            erase: Take the bar off the screen (Ctrl-C: its counts no longer hold, as the
                running trials are being recorded as failed; the CLI's last line says so).
        """
        with self._lock:
            if self._bar is not None:
                self._bar.live_line = ""  # no trial runs any more: the bar is left as it ends
                self._show()
                self._bar.live.transient = erase
                self._bar.stop()
                self._bar = None

    def _count(self, ended: list[FrozenTrial]) -> None:
        states = [t.state for t in ended]
        complete, pruned = states.count(TrialState.COMPLETE), states.count(TrialState.PRUNED)
        self._counts = (complete + pruned, complete, pruned, states.count(TrialState.FAIL))
        # As Optuna's best value: complete trials that meet every constraint (max_gap).
        values = [
            t.value for t in ended
            if t.state == TrialState.COMPLETE and t.value is not None and all(c <= 0 for c in t.constraints.values())
        ]
        if values:
            self._best = f"{(max if self._maximize else min)(values):.4g}"

    def _show(self) -> None:
        if self._bar is not None and self._task is not None:
            finished, _, pruned, failed = self._counts
            self._bar.update(self._task, completed=finished, pruned=pruned, failed=failed, best=self._best)

    def _print(self, line: str) -> None:
        self._last_line = self.clock()
        say(self.console, line)


def trial_line(trial: FrozenTrial, metric: str = "objective") -> str:
    """One finished trial in one line: number, state, value, gap, per-type rates, epochs, seconds.

    Example:
        >>> from droptune import record
        >>> attrs = {**record.start_attrs({"fc": 0.25}, {"fc": "dense"}), "overfit_gap": 0.02, "epochs": 9}
        >>> study = optuna.create_study()
        >>> study.add_trial(optuna.trial.create_trial(value=0.1738, user_attrs=attrs))
        >>> trial_line(study.trials[0], "val_loss")
        'trial 0 complete · val_loss 0.1738 · gap 0.0200 · dense 0.250 · 9 epochs · 0.0 s'
    """
    state = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}.get(
        trial.state, trial.state.name.lower()
    )
    parts = [f"trial {trial.number} {state}"]
    if trial.state == TrialState.COMPLETE and trial.value is not None:
        parts.append(f"{metric} {trial.value:.4g}")
    elif trial.state == TrialState.PRUNED and trial.intermediate_values:
        last = max(trial.intermediate_values)
        parts.append(f"{metric} {trial.intermediate_values[last]:.4g} at epoch {last}")
    gap = trial.user_attrs.get(GAP_ATTR)
    if isinstance(gap, (int, float)) and math.isfinite(gap) and trial.state != TrialState.FAIL:
        parts.append(f"gap {gap:.4f}")
    rates = type_rates(trial)
    if rates:
        parts.append(" ".join(f"{t} {r:.3f}" for t, r in rates.items()))
    epochs = trial.user_attrs.get(EPOCHS_ATTR) or len(trial.intermediate_values)
    if epochs and trial.state != TrialState.FAIL:
        parts.append(f"{epochs} epochs")
    if trial.duration is not None:
        parts.append(f"{trial.duration.total_seconds():.1f} s")
    if trial.state == TrialState.FAIL:
        reason = str(trial.user_attrs.get(REASON_ATTR) or "no reason recorded").strip().splitlines()
        parts.append(f"reason: {reason[0] if reason else '?'}")
    return " · ".join(parts)


def resume_line(name: str, done: int, total: int) -> str:
    """What a resumed run says first: ``n_trials`` is the study's total, and ``--more`` adds to it.

    Example:
        >>> print(resume_line("s", 8, 3))
        s: resuming with 8 finished trials; n_trials 3 is the study's total, not new trials: nothing to run (`--more N` runs N more)
        >>> print(resume_line("s", 2, 5))
        s: resuming with 2 finished trials; n_trials 5 is the study's total: 3 to run
    """
    head = f"{name}: resuming with {done} finished trials; n_trials {total} is the study's total"
    if done >= total:
        return f"{head}, not new trials: nothing to run (`--more N` runs N more)"
    return f"{head}: {total - done} to run"


@contextmanager
def trial_progress(
    name: str,
    total: int,
    study: optuna.Study,
    *,
    console: Console,
    metric: str = "objective",
    period_s: float = PERIOD_S,
    max_epochs: int | None = None,
    tap: EpochTap | None = None,
    poll: bool = False,
) -> Iterator[Callable[[optuna.Study], None]]:
    """Feedback for a run of ``study``; yields the update function to hand to the engine.

    Not on a terminal, a daemon thread prints the status line every ``period_s`` seconds.
    With ``tap`` (the tracker the trials log to), each epoch is shown as it ends; with
    ``poll``, as the study's running trials report it (see :class:`TrialProgress`).
    """
    progress = TrialProgress(
        name=name, total=total, console=console, metric=metric, period_s=period_s, max_epochs=max_epochs,
        poll=poll,
    )
    progress.start(study)
    stop = threading.Event()
    timer = None
    if not console.is_terminal:
        timer = threading.Thread(target=_every, args=(stop, period_s, progress.tick), daemon=True, name="droptune-progress")
        timer.start()
    if tap is not None:
        tap.listener = progress.epoch
    interrupted = False
    try:
        yield progress.update
        progress.update(study)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: no stale bar or status line ("failed 0") is left
        interrupted = True
        raise
    finally:
        if tap is not None:
            tap.listener = None
        stop.set()
        if timer is not None:
            timer.join(timeout=5)
        progress.stop(erase=interrupted)
        if not console.is_terminal and not interrupted:
            progress.tick()


def _every(stop: threading.Event, period_s: float, action: Callable[[], None]) -> None:
    while not stop.wait(period_s):
        action()


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
