"""The ``fit`` executor: one trial at a time, one Lightning ``Trainer.fit`` per trial.

Start the trial (:func:`~droptune.tuning.executors._base.start_trial`: seed, build, discover,
suggest, record), apply its rates, fit with droptune's callbacks (gap, pruning, early stopping,
tracking); the scheduler records and tells the outcome.
"""

from __future__ import annotations

import logging
import traceback
import warnings

import lightning.pytorch as pl
import optuna
import torch
from lightning.pytorch.callbacks import EarlyStopping

from droptune._memory import release_trial_memory
from droptune.callbacks import GapCallback, PruningCallback
from droptune.config import StudySpec
from droptune.exceptions import DroptuneError
from droptune.record import TrialResult, outcome
from droptune.sites import apply_rates
from droptune.space import SearchSpace
from droptune.tracking._callback import TrackingCallback
from droptune.tuning._recorder import TrialRecorder
from droptune.tuning.executors._base import start_trial

log = logging.getLogger(__name__)


class FitExecutor:
    """Train one trial at a time with ``Trainer.fit`` (see :class:`~droptune.tuning._scheduler.Executor`).

    A NaN/inf loss, CUDA running out of memory or an exception from the user's code fails
    the trial with the reason (the study goes on); a DroptuneError (a study that cannot work
    at all) and Ctrl-C propagate, and the scheduler fails the trial.

    Args:
        spec: The study.
        space: Its search space.
        recorder: Records the trials.
    """

    capacity = 1

    def __init__(self, spec: StudySpec, space: SearchSpace, recorder: TrialRecorder) -> None:
        self.spec = spec
        self.space = space
        self.recorder = recorder
        self._trial: optuna.Trial | None = None

    def running(self) -> list[optuna.Trial]:
        return [self._trial] if self._trial is not None else []

    def start(self, trials: list[optuna.Trial]) -> None:
        (self._trial,) = trials

    def step(self) -> list[tuple[optuna.Trial, TrialResult]]:
        trial = self._trial
        assert trial is not None, "step() before start()"  # the scheduler's contract, not user input
        result = self._run(trial)
        self._trial = None
        return [(trial, result)]

    def close(self) -> None:
        release_trial_memory()

    def _run(self, trial: optuna.Trial) -> TrialResult:
        model, data, rates = start_trial(trial, self.spec, self.space, self.recorder)
        assert data is not None, "start_trial builds the data when it discovers the sites"  # its contract
        apply_rates(model, rates, strict=False)  # include/exclude: the tuned sites only
        # The run is open and the trial marked before training: a worker killed mid-fit is seen.
        self.recorder.drain()
        try:
            return self._fit(trial, model, data)
        except torch.OutOfMemoryError as err:
            return TrialResult(state="failed", reason=f"CUDA out of memory: {str(err).splitlines()[0]}")
        except DroptuneError:
            raise
        except Exception as err:  # the user's model or data failed: record why, go on
            log.debug("trial %d failed", trial.number, exc_info=True)
            return TrialResult(state="failed", reason=f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=-3)}")
        finally:
            del model, data
            release_trial_memory()

    def _fit(self, trial: optuna.Trial, model: pl.LightningModule, data: pl.LightningDataModule) -> TrialResult:
        spec, objective = self.spec, self.spec.objective
        gap = GapCallback(metrics=(objective.metric, "val_acc"), seed=spec.seed, subset=spec.trainer.gap_subset)
        pruning = PruningCallback(trial, gap, objective.metric)
        tracking = TrackingCallback(self.recorder.tracker, self.recorder.run_id(trial), gap)
        callbacks: list[pl.Callback] = [gap, pruning, tracking]
        if spec.trainer.early_stopping_patience:
            mode = "min" if objective.direction == "minimize" else "max"
            callbacks.append(EarlyStopping(objective.metric, patience=spec.trainer.early_stopping_patience, mode=mode))
        trainer = pl.Trainer(
            max_epochs=spec.trainer.max_epochs,
            accelerator=spec.trainer.accelerator,
            devices=spec.trainer.devices,
            precision=spec.trainer.precision,  # type: ignore[arg-type]
            callbacks=callbacks,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=r".*number of training batches.*")
            try:
                trainer.fit(model, datamodule=data)
            except SystemExit:
                # Lightning turns Ctrl-C into SystemExit(1) after its own clean-up; keep it a
                # KeyboardInterrupt so the scheduler records the trial and the CLI exits 130.
                if trainer.interrupted:
                    raise KeyboardInterrupt from None
                raise
        return outcome(
            gap.history, objective.metric, objective.direction, failed=gap.non_finite or None, pruned_at=pruning.pruned_at
        )

