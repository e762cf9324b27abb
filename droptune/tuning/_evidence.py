"""Pruning that waits for evidence.

A fixed warm-up of 2 epochs let the median pruner stop trials after 3 epochs, which can be
3 gradient steps on a small training set (the Concrete Dropout check of issue 15: 15-19 of
24 trials pruned at N <= 1000, some with every trial after the start-up ones pruned, so the
recommendation came from the prior and 4 random trials). Two rules fix that:

- the warm-up is a share of training, :data:`WARMUP_SHARE` of the epochs trials really run
  (at least :data:`MIN_WARMUP_EPOCHS`): a study sized in epochs for its gradient steps (small
  data, many epochs) gets a warm-up in proportion; high dropout rates converge later, too.
  "Really run", not ``max_epochs``: with early stopping a trial of ``max_epochs: 150`` ended
  at epoch 12-22, so a warm-up of 38 epochs never let the pruner act (1 of 249 trials pruned,
  issue 20). Until trials have completed, the share of ``max_epochs`` is used; after, the
  median length of the complete trials (never more than the ``max_epochs`` share);
- :class:`EvidencePruner` never prunes while fewer than :data:`MIN_COMPLETE_SHARE` of the
  study's finished trials are complete, so pruning cannot leave a recommendation resting
  on a handful of complete trials.
"""

from __future__ import annotations

import math
import statistics

import optuna
from optuna.trial import FrozenTrial, TrialState

from droptune.config import StudySpec

WARMUP_SHARE = 0.25
MIN_WARMUP_EPOCHS = 2
MIN_COMPLETE_SHARE = 1 / 3
N_STARTUP_TRIALS = 5


def warmup_epochs(spec: StudySpec) -> int:
    """Epochs before any trial of ``spec`` may be pruned: a quarter of ``max_epochs``, at least 2.

    Example:
        >>> from droptune.config import ClassSpec, TrainerSpec
        >>> spec = StudySpec(name="s", model=ClassSpec("m.M"), data=ClassSpec("m.D"), trainer=TrainerSpec(max_epochs=40))
        >>> warmup_epochs(spec)
        10
    """
    return max(MIN_WARMUP_EPOCHS, math.ceil(WARMUP_SHARE * spec.trainer.max_epochs))


class EvidencePruner(optuna.pruners.MedianPruner):
    """Optuna's median pruner that keeps at least ``min_complete_share`` of finished trials complete.

    It only reads the study, as the median pruner does (``snapshot_safe``: a packed
    population may decide all its members from one snapshot of the study).

    Args:
        n_startup_trials: Complete trials before any pruning.
        n_warmup_steps: Epochs (reported steps) before a trial may be pruned, planned from
            ``max_epochs``; once trials have completed, the share of the epochs they really
            ran when that is fewer (:func:`observed_warmup`).
        min_complete_share: Share of complete trials among the finished ones (complete
            or pruned, this one counted as pruned) below which nothing is pruned.
    """

    snapshot_safe = True

    def __init__(
        self, *, n_startup_trials: int = N_STARTUP_TRIALS, n_warmup_steps: int = MIN_WARMUP_EPOCHS,
        min_complete_share: float = MIN_COMPLETE_SHARE,
    ) -> None:
        # The parent's own warm-up is off: prune() applies the observed one (observed_warmup).
        super().__init__(n_startup_trials=n_startup_trials, n_warmup_steps=0)
        self.n_warmup_steps = n_warmup_steps
        self.min_complete_share = min_complete_share

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        """Called by Optuna after each report: prune only past warm-up, with evidence to spare."""
        if trial.last_step is None or trial.last_step < MIN_WARMUP_EPOCHS:
            return False
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        complete = [t for t in finished if t.state == TrialState.COMPLETE]
        if len(complete) < self.min_complete_share * (len(finished) + 1):
            return False
        if trial.last_step < observed_warmup(complete, self.n_warmup_steps):
            return False
        return super().prune(study, trial)


def observed_warmup(complete: list[FrozenTrial], planned: int) -> int:
    """The warm-up for trials as long as the ``complete`` ones really ran: at most ``planned``.

    Example:
        >>> from optuna.trial import create_trial
        >>> runs = [create_trial(value=1.0, intermediate_values={e: 1.0 for e in range(12)})] * 3
        >>> observed_warmup(runs, planned=38)
        3
        >>> observed_warmup([], planned=38)
        38
    """
    lengths = [len(t.intermediate_values) for t in complete if t.intermediate_values]
    if not lengths:
        return planned
    return min(planned, max(MIN_WARMUP_EPOCHS, math.ceil(WARMUP_SHARE * statistics.median(lengths))))


def evidence_pruner(spec: StudySpec) -> EvidencePruner:
    """The ``median`` pruner of a study file: warm-up relative to ``max_epochs``, evidence kept."""
    return EvidencePruner(n_warmup_steps=warmup_epochs(spec))
