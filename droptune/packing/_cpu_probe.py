"""``search.pack: auto`` on the CPU: the population size from a short timing probe.

On a GPU the population is sized by memory (:mod:`droptune.packing._auto`). A CPU has
memory to spare for small models but no idle parallel units: packing pays only where one
vectorised step of K members costs less than K steps of one model (the Python, dispatch and
small-matrix overhead of a tiny model is shared by the population; a large model's step is
compute-bound and gains nothing; and on a CPU cache, a population's stacked tensors do not fit
where one model's do). So the probe times it: one training step of the model on its own in a
Lightning fit (what an unpacked trial runs: its loop and data loader counted, its set-up not),
then of populations of 2, 4, 8... members on one batch of the study's data. It stops when a
doubling makes the time per member worse than the best by :data:`MAX_LOSS`, when
:data:`PROBE_BUDGET_S` is spent, or at the memory or study cap.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    import lightning.pytorch as pl

    from droptune.config import StudySpec
    from droptune.sites import DropoutSite

log = logging.getLogger(__name__)

# (members) -> seconds of one training step: 1 is the model on its own in a Lightning fit (as
# an unpacked trial trains), n >= 2 a packed population of n members.
StepTimeFn = Callable[[int], float]

PROBE_BUDGET_S = 2.0  # the probe stops measuring larger populations once it has spent this
# A larger population is taken while its time per member stays within this share of the
# best measured: it costs about the same per step and amortises what the probe does not time
# (a population's per-epoch evaluation, Optuna's and MLflow's writes, its trials' asks).
MAX_LOSS = 0.10
MIN_SPEEDUP = 1.5  # below this the population's bookkeeping would eat the gain: unpacked
MEMORY_SHARE = 0.25  # of the available RAM, for a population's parameters and optimiser state
REPEATS = 3  # timed steps per size (the fastest counts: other processes only ever add time)
# Bytes a member holds per parameter element: the weight, its gradient and Adam's two moments.
COPIES_PER_PARAMETER = 4


def pack_from_step_times(
    step_time: StepTimeFn, *, cap: int, budget_s: float = PROBE_BUDGET_S,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[int, str]:
    """The population size that trains the most trial-steps per second, from measured steps.

    Args:
        step_time: Seconds of one training step of n members (see :data:`StepTimeFn`).
        cap: The largest population to consider (memory, the study's trials, the global cap).
        budget_s: Probe time after which no larger population is measured.
        clock: Seconds, for the budget (tests pass a fake one).

    Returns:
        ``(K, reason)``: ``K >= 1`` (1: unpacked) and the measurements behind it.
    """
    start = clock()
    alone = step_time(1)
    best_n, best_per_member, stop = 1, float("inf"), f"capped at {cap}"
    n = 2
    while n <= cap:
        per_member = step_time(n) / n
        if per_member > best_per_member * (1 + MAX_LOSS):
            stop = f"{n} members cost more per member ({per_member * 1e3:.2f} ms)"
            break
        best_n, best_per_member = n, min(per_member, best_per_member)  # larger, at about the same cost
        if clock() - start > budget_s:
            stop = f"probe budget of {budget_s:g} s spent"
            break
        n *= 2
    if best_n == 1:
        return 1, f"CPU timing probe: at most {cap} member fits (study size or memory)"
    speedup = alone / best_per_member
    measured = (
        f"one step: {alone * 1e3:.2f} ms alone, {best_per_member * 1e3:.2f} ms per member with "
        f"{best_n} members ({speedup:.1f}x); {stop}"
    )
    if speedup < MIN_SPEEDUP:
        return 1, f"CPU timing probe: packing would gain less than {MIN_SPEEDUP:g}x ({measured})"
    return best_n, f"CPU timing probe: {measured}"


def memory_cap(model: torch.nn.Module, available_bytes: int | None = None) -> int:
    """Members whose parameters and optimiser state fit in :data:`MEMORY_SHARE` of the free RAM."""
    if available_bytes is None:
        available_bytes = _available_ram()
    per_member = COPIES_PER_PARAMETER * sum(p.numel() * p.element_size() for p in model.parameters())
    return max(1, int(available_bytes * MEMORY_SHARE // max(per_member, 1)))


def cpu_step_timer(
    spec: StudySpec, model: pl.LightningModule, data: pl.LightningDataModule, sites: Sequence[DropoutSite]
) -> StepTimeFn:
    """A :data:`StepTimeFn` that trains ``model`` (alone, or packed) on one batch of ``data``.

    Raises:
        PackingError: If the model, loss, precision or data cannot be packed.
    """
    from droptune.packing._convert import packable_copy
    from droptune.packing._data import PackedData
    from droptune.packing._optim import packed_optimizer
    from droptune.packing._population import Population
    from droptune.packing._setup import resolve_loss, resolve_precision

    device = torch.device("cpu")
    loss_fn, classify = resolve_loss(spec.loss, model)
    autocast = resolve_precision(spec.trainer.precision)
    packed = PackedData.from_datamodule(data, device=device, seed=spec.seed, gap_subset=spec.trainer.gap_subset)
    x, y = next(iter(packed.train_batches()))
    rates = {site.name: 0.1 for site in sites}

    def alone() -> float:
        return _lightning_step(spec, copy.deepcopy(model), data) or _bare_step(model, loss_fn, x, y, autocast)

    def population(n: int) -> float:
        base, rate_buffers = packable_copy(model, list(sites))
        pop = Population(base=base, rate_buffers=rate_buffers, loss_fn=loss_fn, optimizer=packed_optimizer(model),
                         device=device, classify=classify, autocast=autocast)
        pop.add([model] * n, [rates] * n)
        return _fastest(lambda: pop.train_epoch(itertools.repeat((x, y), 1)))

    return lambda n: alone() if n == 1 else population(n)


def _lightning_step(spec: StudySpec, model: pl.LightningModule, data: pl.LightningDataModule) -> float | None:
    """Seconds of one training step in a Lightning fit, as an unpacked trial trains (None: too few batches).

    Timed between the starts of consecutive batches, so that Lightning's loop, the data
    loader and the user's ``training_step`` are all counted, and the fit's set-up is not.
    """
    import lightning.pytorch as pl

    starts: list[float] = []

    class _Clock(pl.Callback):
        def on_train_batch_start(self, *args: object) -> None:
            starts.append(time.perf_counter())

    with warnings.catch_warnings(), _quiet("lightning.pytorch.utilities.rank_zero"):
        warnings.simplefilter("ignore")  # Lightning's advice on loaders and limits, for a probe
        trainer = pl.Trainer(
            max_epochs=1, limit_train_batches=REPEATS + 2, limit_val_batches=0, num_sanity_val_steps=0,
            accelerator="cpu", devices=1, precision=spec.trainer.precision,  # type: ignore[arg-type]
            callbacks=[_Clock()], logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(model, datamodule=data)
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts[1:])]  # the first batch warms up
    return min(gaps) if gaps else None


def _bare_step(
    model: torch.nn.Module, loss_fn: Callable[..., torch.Tensor], x: torch.Tensor, y: torch.Tensor,
    autocast: torch.dtype | None,
) -> float:
    """Seconds of one step of the model and its optimiser, without Lightning (data with one batch)."""
    from droptune.packing._optim import _single_optimizer

    own = copy.deepcopy(model).train()
    optimizer = _single_optimizer(own.configure_optimizers(), type(model).__name__)  # type: ignore[operator]

    def one() -> None:
        with torch.autocast("cpu", dtype=autocast) if autocast is not None else contextlib.nullcontext():
            loss = loss_fn(own(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    return _fastest(one)


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Silence a logger's INFO lines (Lightning's "GPU available: ..."), for the probe's fit."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _fastest(step: Callable[[], object]) -> float:
    step()  # warm-up: first-call dispatch, allocator, optimiser state
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def _available_ram() -> int:
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 30  # unknown: assume 1 GiB, small enough to be safe
