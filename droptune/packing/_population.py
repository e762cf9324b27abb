"""A population: many models of one architecture trained at once in one vectorised step."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

from droptune.exceptions import PackingError
from droptune.packing._convert import WORKERS_HINT
from droptune.packing._optim import PackedOptimizer

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Population:
    """Members' parameters stacked along a leading dimension, trained through ``torch.vmap``.

    The forward pass is the user's module run with ``torch.func.functional_call`` under
    ``vmap(..., randomness="different")``, so every member draws its own dropout masks
    at its own rates (the rate buffers of :func:`~droptune.packing.packable_copy`). One
    loss summed over members keeps their gradients independent; the packed optimiser
    then steps each member exactly as torch's would on its own.

    Args:
        base: The packable copy of the model (its own weights serve only the probe).
        rate_buffers: ``{site name: rate buffer name}``, from ``packable_copy``.
        loss_fn: ``loss_fn(outputs, targets)``, a scalar (mean) loss.
        optimizer: The packed optimiser (state per member).
        device: Where the population lives.
        classify: Also count correct ``argmax`` predictions (``val_acc``).
        autocast: A dtype to run forward passes under ``torch.autocast`` (bf16), or None.
    """

    def __init__(
        self,
        *,
        base: nn.Module,
        rate_buffers: Mapping[str, str],
        loss_fn: LossFn,
        optimizer: PackedOptimizer,
        device: torch.device,
        classify: bool = False,
        autocast: torch.dtype | None = None,
    ) -> None:
        self.base = base.to(device)
        self.rate_buffers = dict(rate_buffers)
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.device = device
        self.classify = classify
        self.autocast = autocast
        self.params: dict[str, torch.Tensor] = {}
        self.buffers: dict[str, torch.Tensor] = {}
        self._train_step = vmap(self._loss, in_dims=(0, 0, None, None), randomness="different")
        self._eval_step = vmap(self._eval, in_dims=(0, 0, None, None), randomness="different")

    @property
    def size(self) -> int:
        """Number of members."""
        return len(next(iter(self.params.values()))) if self.params else 0

    def add(self, models: Sequence[nn.Module], rates: Sequence[Mapping[str, float]]) -> None:
        """Append members: each a freshly built (unconverted) model and its rates by site."""
        if not models:
            return
        params = [dict(m.named_parameters()) for m in models]
        buffers = [dict(m.named_buffers()) for m in models]
        new_params = {
            name: torch.stack([p[name].detach() for p in params]).to(self.device)
            for name, _ in self.base.named_parameters()
        }
        new_buffers = {}
        for name, default in self.base.named_buffers():
            if name in buffers[0]:
                new_buffers[name] = torch.stack([b[name] for b in buffers]).to(self.device)
            else:  # a rate buffer: the member's rate, or the model's for sites not tuned
                site = next((s for s, b in self.rate_buffers.items() if b == name), None)
                values = [float(r[site]) if site is not None and site in r else float(default) for r in rates]
                new_buffers[name] = torch.tensor(values, dtype=default.dtype, device=self.device)
        n_new = len(models)
        for name, value in new_params.items():
            old = self.params.get(name)
            value = value if old is None else torch.cat([old.detach(), value])
            self.params[name] = value.requires_grad_(name in self.optimizer.hyper)
        for name, value in new_buffers.items():
            old = self.buffers.get(name)
            self.buffers[name] = value if old is None else torch.cat([old, value])
        self.optimizer.extend(self.params, n_new)

    def keep(self, members: Sequence[int]) -> None:
        """Keep only the members at these positions, in this order (the others are dropped)."""
        index = torch.as_tensor(list(members), dtype=torch.long, device=self.device)
        for name, value in self.params.items():
            self.params[name] = value.detach().index_select(0, index).requires_grad_(value.requires_grad)
        for name, value in self.buffers.items():
            self.buffers[name] = value.index_select(0, index)
        self.optimizer.select(index)

    def rates(self) -> dict[str, torch.Tensor]:
        """``{site name: rates of all members}``."""
        return {site: self.buffers[buffer] for site, buffer in self.rate_buffers.items()}

    def train_epoch(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """Train every member on the same batches; return each member's mean batch loss."""
        self.base.train()
        trainable = [name for name in self.params if name in self.optimizer.hyper]
        losses = []
        for x, y in batches:
            with self._context():
                per_member = self._train_step(self.params, self.buffers, x, y)
            grads = torch.autograd.grad(
                per_member.sum(), [self.params[n] for n in trainable], allow_unused=True
            )
            self.optimizer.step(self.params, dict(zip(trainable, grads)))
            losses.append(per_member.detach().float())
        if not losses:
            return torch.full((self.size,), float("nan"), device=self.device)
        return torch.stack(losses).mean(dim=0)

    @torch.no_grad()
    def evaluate(
        self, x: torch.Tensor, y: torch.Tensor, batch_size: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Eval-mode loss (and accuracy) of every member over ``(x, y)``, batch by batch.

        The loss is the mean of the per-batch losses weighted by batch size, as Lightning
        averages a logged ``val_loss`` over an epoch.
        """
        self.base.eval()
        total = torch.zeros(self.size, device=self.device)
        correct = torch.zeros(self.size, device=self.device)
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            with self._context():
                loss, hits = self._eval_step(self.params, self.buffers, xb, yb)
            total += loss.float() * len(xb)
            correct += hits.float()
        accuracy = correct / len(x) if self.classify and not y.is_floating_point() else None
        return total / len(x), accuracy

    def probe(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Run one packed training step and one evaluation of two copies of the base model.

        Raises:
            PackingError: If the model fails under ``torch.vmap`` (a layer without a
                batching rule, data-dependent control flow, in-place updates of state)
                or the loss is not a scalar.
        """
        params = {
            n: torch.stack([p.detach()] * 2).requires_grad_(p.requires_grad)
            for n, p in self.base.named_parameters()
        }
        buffers = {n: torch.stack([b] * 2) for n, b in self.base.named_buffers()}
        name = type(self.base).__name__
        try:
            self.base.train()
            with self._context():
                loss = self._train_step(params, buffers, x, y)
            if loss.shape != (2,):
                raise PackingError(
                    f"the loss of {name} must be a scalar (mean over the batch); got shape {tuple(loss.shape[1:])}."
                )
            needs = [p for p in params.values() if p.requires_grad]
            if needs:
                torch.autograd.grad(loss.sum(), needs, allow_unused=True)
            self.base.eval()
            with torch.no_grad(), self._context():
                self._eval_step(params, buffers, x, y)
        except PackingError:
            raise
        except Exception as err:
            raise PackingError(
                f"{name} cannot be trained as a packed population: under torch.vmap it failed with "
                f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}. {WORKERS_HINT}"
            ) from err

    def _loss(self, params: dict, buffers: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(functional_call(self.base, (params, buffers), (x,)), y)

    def _eval(
        self, params: dict, buffers: dict, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = functional_call(self.base, (params, buffers), (x,))
        loss = self.loss_fn(out, y)
        if self.classify and not y.is_floating_point():
            return loss, (out.argmax(dim=-1) == y).sum()
        return loss, loss.new_zeros(())

    @contextlib.contextmanager
    def _context(self) -> Iterator[None]:
        # The fused Transformer fast path takes rates as floats and has no vmap rule.
        fastpath = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            if self.autocast is not None:
                with torch.autocast(self.device.type, dtype=self.autocast):
                    yield
            else:
                yield
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)
