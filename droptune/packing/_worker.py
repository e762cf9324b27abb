"""The packed worker: ask the study for K trials, train them as one population, refill slots."""

from __future__ import annotations

import logging
import time
import traceback
from concurrent.futures import Future

import lightning.pytorch as pl
import optuna
import torch
from optuna.trial import TrialState

from droptune.exceptions import ConfigError, DroptuneError, PackingError, StudyError
from droptune.packing._bookkeeping import SNAPSHOT_PRUNERS, Bookkeeper, prune_decisions
from droptune.packing._convert import packable_copy
from droptune.packing._data import PackedData
from droptune.packing._member import Member, run_params, run_summary
from droptune.packing._optim import packed_optimizer
from droptune.packing._population import Population
from droptune.packing._setup import record_metrics, resolve_device, resolve_loss, resolve_precision
from droptune.sites import DropoutSite
from droptune.tracking import MlflowTracker
from droptune.tuning._build import build, model_sites
from droptune.tuning._heartbeat import Heartbeat, heartbeat_interval, mark_worker, reap_dead_trials
from droptune.tuning._lock import study_lock
from droptune.tuning._objective import (
    RATES_ATTR,
    REASON_ATTR,
    TYPE_RATES_ATTR,
    TYPES_ATTR,
    TrialContext,
    rates_by_type,
    release_memory,
)
from droptune.tuning._study import (
    IDLE_POLL_S,
    MAX_CONSECUTIVE_FAILURES,
    Counts,
    ProgressFn,
    count_trials,
    tell,
)

log = logging.getLogger(__name__)

PACK_ATTR = "pack"  # size of the population the trial was trained in


def run_packed_worker(
    ctx: TrialContext,
    study: optuna.Study,
    *,
    progress: ProgressFn | None = None,
    deadline: float | None = None,
) -> Counts:
    """Run a study's trials ``search.pack`` at a time as one vectorised population.

    Stops starting trials once the study holds ``search.n_trials`` finished trials
    (counting running ones, of every worker) or at ``deadline``, and returns when its last
    member is done. A pruned, early-stopped or finished member leaves at the end of an epoch
    and a new trial takes its slot. Each trial is recorded as an unpacked one is (user
    attributes, per-epoch reports and pruning, an MLflow child run with per-epoch metrics).
    Interrupted, the running members' trials end FAIL with the reason and their MLflow runs
    FAILED, then the exception propagates.

    Args:
        ctx: The study's shared context (spec, space, tracker, parent run).
        study: The loaded, prepared study.
        progress: Called with the study after each finished trial.
        deadline: ``time.monotonic()`` after which no new trial starts.

    Returns:
        The study's counts when this worker stopped.

    Raises:
        PackingError: If the model, its optimiser, loss or data cannot be packed (raised
            before any trial starts).
    """
    return _PackedRun(ctx, study).run(progress=progress, deadline=deadline)


class _PackedRun:
    def __init__(self, ctx: TrialContext, study: optuna.Study) -> None:
        spec = ctx.spec
        self.ctx, self.study, self.spec = ctx, study, spec
        self.capacity = spec.search.pack
        device = resolve_device(spec.trainer)
        autocast = resolve_precision(spec.trainer.precision)
        template, datamodule = build(spec)
        self.sites: list[DropoutSite] = ctx.space.select(model_sites(spec, template, datamodule))
        self.layer_types = {s.name: s.layer_type for s in self.sites}
        base, rate_buffers = packable_copy(template, self.sites)
        loss_fn, classify = resolve_loss(spec.loss, template)
        log.info(
            "packing %d trials: %s.forward and the loss %s, trained with the optimiser of its "
            "configure_optimizers (training_step is not called)",
            self.capacity,
            type(template).__name__,
            spec.loss or "loss_fn",
        )
        self.metric = spec.objective.metric
        if self.metric not in record_metrics(classify):
            raise PackingError(
                f"objective.metric {self.metric!r} is not measured by packed training; choose one of: "
                f"{', '.join(record_metrics(classify))}, or run unpacked (search.pack: 1)."
            )
        self.data = PackedData.from_datamodule(datamodule, device=device, seed=spec.seed)
        self.population = Population(
            base=base,
            rate_buffers=rate_buffers,
            loss_fn=loss_fn,
            optimizer=packed_optimizer(template),
            device=device,
            classify=classify,
            autocast=autocast,
        )
        self.population.probe(self.data.x_train[:2].to(device), self.data.y_train[:2].to(device))
        self.members: list[Member] = []
        self.failures = 0
        self.books = Bookkeeper()
        self.heartbeat = Heartbeat(study._storage, heartbeat_interval(study))
        self.progress: ProgressFn | None = None

    def run(self, *, progress: ProgressFn | None, deadline: float | None) -> Counts:
        self.progress = progress
        try:
            with self.heartbeat:
                while True:
                    counts = self._fill(deadline)
                    if self.members:
                        self._epoch()
                    elif counts.finished >= self.spec.search.n_trials or _past(deadline):
                        return count_trials(self.study)
                    else:  # other workers run the last trials: wait, in case one dies or fails
                        time.sleep(IDLE_POLL_S)
        except BaseException as err:
            interrupted = isinstance(err, (KeyboardInterrupt, SystemExit))
            self._abort("interrupted (Ctrl-C or SIGINT)" if interrupted else f"{type(err).__name__}: {err}")
            raise
        finally:
            self.books.close()

    def _fill(self, deadline: float | None) -> Counts:
        """Start trials until the population is full or the study has enough of them."""
        free = self.capacity - len(self.members)
        if free <= 0:
            return Counts()
        if not self.members:  # nothing to train meanwhile: let pending tells land, count exactly
            self.books.drain()
        trials, counts = self._start_trials(free, deadline)
        models, rates = [], []
        for trial in trials:
            try:
                model, member_rates = self._build_member(trial)
            except BaseException as err:
                for other in trials[trials.index(trial) :]:
                    other.set_user_attr(REASON_ATTR, f"{type(err).__name__}: {err}"[:2000])
                    self.study.tell(other, state=TrialState.FAIL)
                raise
            self.books.submit(self.heartbeat.add, trial._trial_id)
            params = run_params(member_rates, self.layer_types)
            run = self.books.submit(
                self.ctx.tracker.start_trial, self.ctx.parent_run_id, trial.number, params
            )
            self.members.append(Member(trial=trial, run=run))
            models.append(model)
            rates.append(member_rates)
        self.population.add(models, rates)
        return counts

    def _start_trials(self, n: int, deadline: float | None) -> tuple[list[optuna.Trial], Counts]:
        """Up to ``n`` new trials, counted and asked as one step under the study's lock.

        As the unpacked loop's ``next_trial`` does, one trial at a time: dead workers'
        trials are failed and requeued first; failed trials do not count.
        """
        with study_lock(self.study._storage, self.study.study_name):
            reap_dead_trials(self.study, tracker=self.ctx.tracker, parent_run_id=self.ctx.parent_run_id)
            counts = count_trials(self.study)
            room = self.spec.search.n_trials - counts.finished - counts.running
            if _past(deadline):
                room = 0
            trials = [self.study.ask() for _ in range(max(0, min(n, room)))]
        for trial in trials:
            self.books.submit(mark_worker, trial)
        return trials, counts

    def _build_member(self, trial: optuna.Trial) -> tuple[torch.nn.Module, dict[str, float]]:
        # Seeded as an unpacked trial is: the member starts from the same weights.
        pl.seed_everything(self.spec.seed + trial.number, workers=True, verbose=False)
        try:
            model = self.spec.model.build()
        except TypeError as err:
            raise ConfigError(f"{self.spec.source or 'study'}: model.init_args: {err}.") from None
        rates = self.ctx.space.suggest(trial, self.sites)
        for key, value in (
            (RATES_ATTR, rates),
            (TYPES_ATTR, self.layer_types),
            (TYPE_RATES_ATTR, rates_by_type(rates, self.layer_types)),
            (PACK_ATTR, self.capacity),
        ):
            self.books.submit(trial.set_user_attr, key, value)
        return model, rates

    def _epoch(self) -> None:
        """Train every member one epoch, record it, then let finished members go."""
        try:
            records = self._train_and_measure()
        except DroptuneError:
            raise
        except Exception as err:
            log.debug("packed epoch failed", exc_info=True)
            reason = _failure_reason(err, len(self.members))
            for member in self.members:
                member.failed = reason
            release_memory()
        else:
            self.books.drain()  # last epoch's writes (they ran while this epoch trained)
            for member, record in zip(self.members, records):
                self._observe(member, record)
            self._prune()
        done = [m for m in self.members if m.done]
        if done:
            self.population.keep([i for i, m in enumerate(self.members) if not m.done])
            self.members = [m for m in self.members if not m.done]
            for member in done:
                self._finish(member)

    def _train_and_measure(self) -> list[dict[str, float]]:
        population, data = self.population, self.data
        train_loss = population.train_epoch(data.train_batches())
        val_loss, val_acc = population.evaluate(data.x_val, data.y_val, data.eval_batch_size)
        fit_loss, _ = population.evaluate(data.x_fit, data.y_fit, data.eval_batch_size)
        columns = {"train_loss": train_loss, "val_loss": val_loss}
        if val_acc is not None:
            columns["val_acc"] = val_acc
        columns["train_loss_eval"] = fit_loss
        values = {k: v.double().cpu().tolist() for k, v in columns.items()}  # one transfer per metric
        records = []
        for i, member in enumerate(self.members):
            record = {"epoch": float(len(member.history))}
            record.update({k: v[i] for k, v in values.items()})
            record["overfit_gap"] = record["val_loss"] - record["train_loss_eval"]
            records.append(record)
        return records

    def _observe(self, member: Member, record: dict[str, float]) -> None:
        """What the callbacks of an unpacked trial do at the end of an epoch, pruning aside."""
        epoch = len(member.history)
        self.books.submit(_log_epoch, self.ctx.tracker, member.run, epoch, record)
        value = member.observe(record, self.spec.objective, self.spec.trainer)
        if value is not None:
            self.books.submit(member.trial.report, value, step=epoch)

    def _prune(self) -> None:
        """Ask the pruner about every member that reported this epoch."""
        judged = [m for m in self.members if m.reported_now()]
        if not judged:
            return
        if type(self.study.pruner) not in SNAPSHOT_PRUNERS:
            self.books.drain()  # trial.should_prune reads the reports from the storage
        decisions = prune_decisions(self.study, [m.trial for m in judged], [m.reported for m in judged])
        for member, prune in zip(judged, decisions):
            if prune:
                member.pruned_at = len(member.history) - 1

    def _finish(self, member: Member) -> None:
        """Record the trial as an unpacked one ends: attributes, MLflow run, then tell."""
        objective, trial = self.spec.objective, member.trial
        self.books.submit(self.heartbeat.discard, trial._trial_id)  # after its add: FIFO
        result = member.outcome(objective)
        for key, value in member.final_attrs(objective).items():
            self.books.submit(trial.set_user_attr, key, value)
        constraint = member.constraint(objective)
        if constraint is not None:
            self.books.submit(trial.set_constraint, "overfit_gap", constraint)
        if result.reason:
            self.books.submit(trial.set_user_attr, REASON_ATTR, result.reason[:2000])
        summary = run_summary(result, objective)
        self.books.submit(_end_trial, self.ctx.tracker, member.run, result.state, summary, result.reason)
        self.books.submit(tell, self.study, trial, result)
        if self.progress is not None:
            self.books.submit(self.progress, self.study)
        self.failures = self.failures + 1 if result.state == "failed" else 0
        if self.failures >= MAX_CONSECUTIVE_FAILURES:
            self.books.drain()
            raise StudyError(
                f"{self.failures} trials in a row failed; the last one because: {result.reason}. "
                "Fix the model or data, then run the same command to resume."
            )

    def _abort(self, reason: str) -> None:
        """Close every running member's trial (FAIL) and run (FAILED) after an interruption."""
        try:
            self.books.drain()
        except BaseException:
            log.debug("a queued write failed while stopping", exc_info=True)
        for member in self.members:
            try:
                member.trial.set_user_attr(REASON_ATTR, reason[:2000])
                self.study.tell(member.trial, state=TrialState.FAIL)
                _end_trial(self.ctx.tracker, member.run, "failed", None, reason)
            except Exception:  # keep closing the others; the original error propagates
                log.debug("could not close trial %d", member.trial.number, exc_info=True)
        self.members = []


def _log_epoch(tracker: MlflowTracker, run: Future, epoch: int, record: dict[str, float]) -> None:
    tracker.log_epoch(run.result(), epoch, record)


def _end_trial(
    tracker: MlflowTracker,
    run: Future,
    state: str,
    summary: dict[str, float] | None,
    reason: str | None,
) -> None:
    tracker.end_trial(run.result(), state, summary=summary, reason=reason)


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _failure_reason(err: Exception, size: int) -> str:
    if isinstance(err, torch.OutOfMemoryError):
        return (
            f"out of device memory training a population of {size} members: lower search.pack "
            f"({str(err).splitlines()[0]})"
        )
    return f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=-3)}"
