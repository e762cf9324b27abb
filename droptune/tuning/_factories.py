"""Study-file names -> Optuna samplers and pruners (one dict each, no if-chains).

Storages: :mod:`droptune.stores._storage`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import optuna

from droptune.config import StudySpec, pack_mode
from droptune.tuning._evidence import evidence_pruner, warmup_epochs
from droptune.tuning._sampler import FailureAwareTPESampler


def _tpe(seed: int, *, constant_liar: bool = True) -> FailureAwareTPESampler:
    # multivariate TPE models the rates jointly: the best rate of one layer depends on the others.
    # group=True keeps that joint model when the space grows mid-study (coarse-to-fine's
    # per-site scales) instead of falling back to independent sampling for the new variables.
    # 5 random start-up trials, not Optuna's 10: the enqueued prior trial and the narrow
    # per-type ranges already place the first trials well (benchmarks/search_quality.py).
    # constant_liar: trials still running (other workers) count as bad results, so parallel
    # asks spread out instead of piling up on one spot. A packed population is asked without
    # it (see sampler_for). Trials that failed because of their rates (NaN, out of memory) count
    # as the worst ones, so TPE moves away from a failing region (droptune.tuning._sampler).
    with warnings.catch_warnings():  # `group` is "experimental" in Optuna 5.0
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return FailureAwareTPESampler(
            seed=seed, multivariate=True, group=True, n_startup_trials=5, constant_liar=constant_liar
        )


SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "tpe": _tpe,
    "gp": lambda seed: optuna.samplers.GPSampler(seed=seed),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    "cmaes": lambda seed: optuna.samplers.CmaEsSampler(seed=seed),
}

def sampler_for(spec: StudySpec, seed: int) -> optuna.samplers.BaseSampler:
    """The study file's sampler, seeded; a packed study's TPE asks without the constant liar.

    A population asks its K trials together, all against the same finished trials. With the
    liar, each ask after the first treats the ones before it as failures and is pushed away
    from the best region: on digits-mlp (K = 8, 5 seeds, benchmarks/results/packed_search.md)
    the packed study's best value after 16 trials was 0.1792 with the liar and 0.1746 without
    (unpacked 0.1712). TPE's own sampling still spreads a population's asks.
    """
    if spec.search.sampler == "tpe" and pack_mode(spec.search) != "unpacked":
        return _tpe(seed, constant_liar=False)
    return SAMPLERS[spec.search.sampler](seed)


PRUNERS: dict[str, Callable[[StudySpec], optuna.pruners.BasePruner]] = {
    # Warm-up is a share of max_epochs, not a fixed 2 epochs; see droptune.tuning._evidence.
    # The default: at equal wall-clock budget (benchmarks/README.md, search quality) none and
    # hyperband scored within half an sd of it on all four tasks, and it ran the most trials.
    "median": evidence_pruner,
    "hyperband": lambda spec: optuna.pruners.HyperbandPruner(
        min_resource=warmup_epochs(spec), max_resource=spec.trainer.max_epochs
    ),
    "successive_halving": lambda spec: optuna.pruners.SuccessiveHalvingPruner(min_resource=warmup_epochs(spec)),
    "none": lambda spec: optuna.pruners.NopPruner(),
}
