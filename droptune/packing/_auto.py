"""``search.pack: auto``: the population size a worker packs, from a probe of its device.

On a CUDA device, for a model that packs, a population of 2 and then of 4 members trains one
step (and evaluates one batch); the peak memory of each gives the cost of one more member and
the fixed cost, and the population is as large as fits in a fraction of the free memory,
shared among the workers of this GPU, capped at :data:`MAX_AUTO_PACK`. On the CPU a short
timing probe (:mod:`droptune.packing._cpu_probe`) packs as many members as still lower the
time per member. A model or study packed training cannot take trains unpacked: 1.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from droptune.exceptions import PackingError
from droptune.packing._cpu_probe import StepTimeFn, cpu_step_timer, memory_cap, pack_from_step_times

if TYPE_CHECKING:
    import lightning.pytorch as pl

    from droptune.config import StudySpec
    from droptune.sites import DropoutSite

log = logging.getLogger(__name__)

MAX_AUTO_PACK = 512  # beyond this a population's bookkeeping, not memory, bounds a worker
MEMORY_FRACTION = 0.8  # of the free device memory: room for the allocator's fragmentation
PROBE_SIZES = (2, 4)

# (population size) -> peak bytes allocated while it trains one step, above what was held before.
ProbeFn = Callable[[int], int]

_GIB = 1024**3


def resolve_pack(
    spec: StudySpec,
    model: pl.LightningModule,
    data: pl.LightningDataModule,
    sites: Sequence[DropoutSite],
    *,
    probe: ProbeFn | None = None,
    free_bytes: int | None = None,
    step_time: StepTimeFn | None = None,
) -> tuple[int, str]:
    """The population size for ``search.pack: auto``, and why.

    Args:
        spec: The study (its ``search.pack`` is ``"auto"``).
        model: One built model of the study.
        data: The study's data.
        sites: The tuned dropout sites of ``model``.
        probe: Peak bytes of a population of n members (default: train one on the GPU);
            given by tests, it stands for a GPU.
        free_bytes: Free device memory (default: ``torch.cuda.mem_get_info``); given by tests.
        step_time: On the CPU, seconds of one training step of n members (default: time
            them, :func:`~droptune.packing._cpu_probe.cpu_step_timer`); given by tests.

    Returns:
        ``(K, reason)``: ``K >= 1`` members per population (1: unpacked) and a sentence that
        says why.
    """
    try:
        _check_packs(spec, model)  # on the CPU too: the cheap reasons first
    except PackingError as err:
        return 1, f"the study does not pack: {err}"
    accelerator = spec.trainer.accelerator.lower()
    if accelerator == "cpu" or (accelerator == "auto" and probe is None and not torch.cuda.is_available()):
        return _cpu_pack(spec, model, data, sites, step_time)
    if accelerator not in ("auto", "gpu", "cuda"):
        return 1, f"trainer.accelerator is {spec.trainer.accelerator!r}: packing runs on a GPU or the CPU"
    try:
        if probe is None:
            probe, free_bytes = _gpu_probe(spec, model, data, sites)
        peaks = [probe(n) for n in PROBE_SIZES]
    except PackingError as err:
        return 1, f"the model does not pack: {err}"
    if free_bytes is None:
        free_bytes = torch.cuda.mem_get_info()[0]
    return pack_from_memory(peaks[0], peaks[1], free_bytes, share=_workers_per_device(spec))


def pack_from_memory(
    peak_small: int,
    peak_large: int,
    free_bytes: int,
    *,
    share: int = 1,
    fraction: float = MEMORY_FRACTION,
    cap: int = MAX_AUTO_PACK,
) -> tuple[int, str]:
    """How many members fit, from the peaks of populations of ``PROBE_SIZES`` members.

    The peak is taken as linear in the population size (the parameters, gradients,
    optimiser state and activations of each member are its own); the line through the two
    probes gives the bytes per member and the fixed bytes.

    Args:
        peak_small: Peak bytes of a population of ``PROBE_SIZES[0]`` members.
        peak_large: Peak bytes of a population of ``PROBE_SIZES[1]`` members.
        free_bytes: Free device memory, with the data already on the device.
        share: Workers sharing the device; each takes its part of the budget.
        fraction: Part of the free memory to fill, in (0, 1].
        cap: The most members returned.

    Returns:
        ``(K, reason)`` with ``1 <= K <= cap``.
    """
    small, large = PROBE_SIZES
    per_member = max((peak_large - peak_small) / (large - small), 1.0)  # >0: the division below
    fixed = max(peak_small - small * per_member, 0.0)
    budget = free_bytes * fraction / max(share, 1)
    fits = math.floor((budget - fixed) / per_member)
    k = max(1, min(cap, fits))
    shared = f" shared by {share} workers" if share > 1 else ""
    why = (
        f"{fits} members fit in {fraction:.0%} of {free_bytes / _GIB:.1f} GiB free{shared} "
        f"({per_member / 2**20:.1f} MiB per member, {fixed / 2**20:.1f} MiB fixed, measured with "
        f"{small} and {large} members)"
    )
    if fits > cap:
        why += f"; capped at {cap}"
    elif fits < 1:
        why += "; not even one more: trained unpacked"
    return k, why


def _cpu_pack(
    spec: StudySpec,
    model: pl.LightningModule,
    data: pl.LightningDataModule,
    sites: Sequence[DropoutSite],
    step_time: StepTimeFn | None,
) -> tuple[int, str]:
    """The CPU's population size, from a timing probe capped by memory and the study's trials."""
    cap = min(MAX_AUTO_PACK, spec.search.n_trials, memory_cap(model))
    if cap < 2:
        return 1, f"at most {cap} member fits (study size or memory): unpacked"
    try:
        timer = step_time or cpu_step_timer(spec, model, data, sites)
        return pack_from_step_times(timer, cap=cap)
    except PackingError as err:
        return 1, f"the model does not pack: {err}"


def _workers_per_device(spec: StudySpec) -> int:
    """How many workers of this study share one GPU (they start together and probe together)."""
    workers = spec.search.workers
    if spec.search.workers_per_gpu is not None:
        return min(workers, spec.search.workers_per_gpu)
    return math.ceil(workers / max(torch.cuda.device_count(), 1)) if torch.cuda.is_available() else workers


def _check_packs(spec: StudySpec, model: pl.LightningModule) -> None:
    """What the packed executor refuses before it trains: layers, loss, precision, objective metric.

    Raises:
        PackingError: Saying which.
    """
    from droptune.packing._convert import check_packable
    from droptune.packing._setup import record_metrics, resolve_loss, resolve_precision

    check_packable(model)
    _, classify = resolve_loss(spec.loss, model)
    resolve_precision(spec.trainer.precision)
    if spec.objective.metric not in record_metrics(classify):
        raise PackingError(f"objective.metric {spec.objective.metric!r} is not measured by packed training.")


def _gpu_probe(
    spec: StudySpec,
    model: pl.LightningModule,
    data: pl.LightningDataModule,
    sites: Sequence[DropoutSite],
    device: torch.device | None = None,
) -> tuple[ProbeFn, int]:
    """A probe that trains populations of ``model`` one step on the study's GPU, and the free memory.

    Raises:
        PackingError: If the model, loss, precision or data cannot be packed.
    """
    from droptune.packing._convert import packable_copy
    from droptune.packing._data import PackedData
    from droptune.packing._optim import packed_optimizer
    from droptune.packing._population import Population
    from droptune.packing._setup import resolve_loss, resolve_precision

    loss_fn, classify = resolve_loss(spec.loss, model)
    device = device or torch.device("cuda")
    packed_data = PackedData.from_datamodule(data, device=device, seed=spec.seed, gap_subset=spec.trainer.gap_subset)
    rates = {site.name: 0.1 for site in sites}

    def population() -> Population:
        base, rate_buffers = packable_copy(model, list(sites))
        return Population(
            base=base, rate_buffers=rate_buffers, loss_fn=loss_fn, optimizer=packed_optimizer(model),
            device=device, classify=classify, autocast=resolve_precision(spec.trainer.precision),
        )

    # The executor's own check (vmap rules, a scalar loss) before any size is measured.
    population().probe(packed_data.x_train[:2].to(device), packed_data.y_train[:2].to(device))
    torch.cuda.empty_cache()
    free = torch.cuda.mem_get_info(device)[0]  # with the data on the device, as the executor holds it

    def probe(n: int) -> int:
        pop = population()
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        try:
            pop.add([model] * n, [rates] * n)
            pop.train_epoch(itertools.islice(packed_data.train_batches(), 1))
            size = packed_data.eval_batch_size
            pop.evaluate(packed_data.x_val[:size], packed_data.y_val[:size], size)
            torch.cuda.synchronize(device)
            return torch.cuda.max_memory_allocated(device) - before
        finally:
            del pop
            torch.cuda.empty_cache()

    return probe, free
