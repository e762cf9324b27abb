"""The ``packed`` executor: K trials trained at once as one population, refilled as slots free.

The scheduler (:mod:`droptune.tuning._scheduler`) decides which trials start and when the
study is done; this executor takes trials into free slots, trains the population one epoch
per :meth:`PackedExecutor.step`, and hands back the members that ended (pruned, early-stopped,
finished or failed). Each trial is recorded as an unpacked one is, through the same
:class:`~droptune.tuning._recorder.TrialRecorder`.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import replace

import lightning.pytorch as pl
import optuna
import torch

from droptune._memory import release_trial_memory
from droptune.callbacks._gap import add_gap
from droptune.config import StudySpec
from droptune.exceptions import ConfigError, DroptuneError, PackingError
from droptune.packing._bookkeeping import SNAPSHOT_PRUNERS, prune_decisions
from droptune.packing._convert import packable_copy
from droptune.packing._data import PackedData
from droptune.packing._member import Member
from droptune.packing._optim import packed_optimizer
from droptune.packing._population import Population
from droptune.packing._setup import record_metrics, resolve_device, resolve_loss, resolve_precision
from droptune.record import PACK_AUTO_ATTR, TrialResult
from droptune.sites import DropoutSite
from droptune.space import SearchSpace
from droptune.tuning._build import build, model_sites
from droptune.tuning._heartbeat import worker_id
from droptune.tuning._recorder import TrialRecorder
from droptune.tuning.executors._base import EXECUTORS, Executor, executor_kind, start_trial

log = logging.getLogger(__name__)


class PackedExecutor:
    """Train up to ``spec.search.pack`` trials as one vectorised population.

    A pruned, early-stopped or finished member leaves at the end of an epoch and a new trial
    may take its slot. Per-epoch reports, pruning and child-run metrics are those of an
    unpacked trial.

    Args:
        spec: The study.
        space: Its search space.
        recorder: Records the trials.
        template: One built model (its structure is packed; its weights serve the probe).
        datamodule: The study's data.
        sites: The tuned sites of ``template``.

    Raises:
        PackingError: If the model, its optimiser, loss or data cannot be packed (raised
            before any trial starts).
    """

    def __init__(
        self,
        *,
        spec: StudySpec,
        space: SearchSpace,
        recorder: TrialRecorder,
        template: pl.LightningModule,
        datamodule: pl.LightningDataModule,
        sites: list[DropoutSite],
        all_sites: list[DropoutSite] | None = None,
    ) -> None:
        self.spec, self.space, self.recorder = spec, space, recorder
        self.all_sites = all_sites if all_sites is not None else sites  # recorded: exports name every site
        if not isinstance(spec.search.pack, int):  # the scheduler resolves "auto" first
            raise ConfigError(f"search.pack {spec.search.pack!r} must be resolved to an integer (resolve_pack).")
        self.capacity = spec.search.pack
        self.sites = sites
        device = resolve_device(spec.trainer)
        base, rate_buffers = packable_copy(template, sites)
        loss_fn, classify = resolve_loss(spec.loss, template)
        log.info(
            "packing %d trials: %s.forward and the loss %s, trained with the optimiser of its "
            "configure_optimizers (training_step is not called)",
            self.capacity, type(template).__name__, spec.loss or "loss_fn",
        )
        if spec.objective.metric not in record_metrics(classify):
            raise PackingError(
                f"objective.metric {spec.objective.metric!r} is not measured by packed training; choose one of: "
                f"{', '.join(record_metrics(classify))}, or run unpacked (search.pack: 1)."
            )
        self.data = PackedData.from_datamodule(
            datamodule, device=device, seed=spec.seed, gap_subset=spec.trainer.gap_subset
        )
        self.population = Population(
            base=base,
            rate_buffers=rate_buffers,
            loss_fn=loss_fn,
            optimizer=packed_optimizer(template),
            device=device,
            classify=classify,
            autocast=resolve_precision(spec.trainer.precision),
        )
        self.population.probe(self.data.x_train[:2].to(device), self.data.y_train[:2].to(device))
        self.members: list[Member] = []

    def running(self) -> list[optuna.Trial]:
        return [m.trial for m in self.members]

    def start(self, trials: list[optuna.Trial]) -> None:
        """Build a member for each trial (seeded as an unpacked trial is) and add them."""
        models, rates = [], []
        for trial in trials:
            self.members.append(Member(trial=trial))  # running from now on: failed if anything below raises
        for trial in trials:
            model, _, member_rates = start_trial(
                trial, self.spec, self.space, self.recorder, sites=self.sites, all_sites=self.all_sites, pack=self.capacity
            )
            models.append(model)
            rates.append(member_rates)
        self.population.add(models, rates)

    def step(self) -> list[tuple[optuna.Trial, TrialResult]]:
        """Train every member one epoch, record it; return the members that left."""
        try:
            records = self._train_and_measure()
        except DroptuneError:
            raise
        except Exception as err:
            log.debug("packed epoch failed", exc_info=True)
            reason = _failure_reason(err, len(self.members))
            for member in self.members:
                member.failed = reason
            release_trial_memory()
        else:
            entries = []
            for member, record in zip(self.members, records):
                value = member.observe(record, self.spec.objective, self.spec.trainer)
                entries.append((member.trial, len(member.history) - 1, record, value is not None))
            self.recorder.epochs(entries)
            self._prune()
        done = [m for m in self.members if m.done]
        if done:
            self.population.keep([i for i, m in enumerate(self.members) if not m.done])
            self.members = [m for m in self.members if not m.done]
        return [(m.trial, m.outcome(self.spec.objective)) for m in done]

    def close(self) -> None:
        self.members = []
        release_trial_memory()

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
            records.append(add_gap(record))
        return records

    def _prune(self) -> None:
        """Ask the pruner about every member that reported this epoch."""
        judged = [m for m in self.members if m.reported_now()]
        if not judged:
            return
        study = self.recorder.study
        if type(study.pruner) not in SNAPSHOT_PRUNERS and not isinstance(study.pruner, optuna.pruners.NopPruner):
            self.recorder.drain()  # trial.should_prune reads the reports from the storage
        decisions = prune_decisions(study, [m.trial for m in judged], [m.reported for m in judged])
        for member, prune in zip(judged, decisions):
            if prune:
                member.pruned_at = len(member.history) - 1


def _failure_reason(err: Exception, size: int) -> str:
    if isinstance(err, torch.OutOfMemoryError):
        return (
            f"out of device memory training a population of {size} members: lower search.pack "
            f"({str(err).splitlines()[0]})"
        )
    return f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=-3)}"


def packed_executor(spec: StudySpec, space: SearchSpace, recorder: TrialRecorder) -> PackedExecutor:
    """The ``packed`` entry of :data:`~droptune.tuning.executors.EXECUTORS`: one built model is the template."""
    model, data = build(spec)
    all_sites = model_sites(spec, model, data)
    return PackedExecutor(spec=spec, space=space, recorder=recorder, template=model, datamodule=data,
                          sites=space.select(all_sites), all_sites=all_sites)


def auto_executor(spec: StudySpec, space: SearchSpace, recorder: TrialRecorder) -> Executor:
    """``search.pack: auto``: probe this worker's device, say what it chose, then build that executor."""
    from droptune.packing import resolve_pack  # the probe needs torch.func only on a GPU

    model, data = build(spec)
    pack, reason = resolve_pack(spec, model, data, space.select(model_sites(spec, model, data)))
    log.info("search.pack auto: %d trial%s at once (%s)", pack, "" if pack == 1 else "s", reason)
    recorder.study.set_user_attr(PACK_AUTO_ATTR, {"pack": pack, "reason": reason, "worker": worker_id()})
    resolved = replace(spec, search=replace(spec.search, pack=pack))
    return EXECUTORS[executor_kind(resolved)](resolved, space, recorder)
