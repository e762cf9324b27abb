"""Element-wise optimisers over stacked parameters, with one state per population member.

torch's Adam keeps one ``step`` counter per parameter tensor. Stacked over a population,
that counter would be shared by every member of the tensor, so a member that joins later
(a refilled slot) would get the wrong bias correction. These optimisers keep every piece of
state per member, a ``step`` vector included, and compute exactly what
``torch.optim.SGD``/``Adam``/``AdamW`` compute for each member on its own.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from droptune.exceptions import PackingError

Hyper = dict[str, Any]


class PackedOptimizer(abc.ABC):
    """Base: per-parameter hyper-parameters, per-member state stacked along dimension 0.

    Args:
        hyper: ``{parameter name: hyper-parameters}`` (a torch param group without
            ``params``); parameters not listed are not optimised.
    """

    def __init__(self, *, hyper: Mapping[str, Hyper]) -> None:
        self.hyper = dict(hyper)
        self.state: dict[str, dict[str, torch.Tensor]] = {}

    @abc.abstractmethod
    def _new_state(self, name: str, param: torch.Tensor) -> dict[str, torch.Tensor]:
        """Fresh state for the members of the stacked ``param`` (all as if never stepped)."""

    @abc.abstractmethod
    def _update(
        self, name: str, param: torch.Tensor, grad: torch.Tensor, state: dict[str, torch.Tensor]
    ) -> None:
        """Update one stacked parameter in place."""

    @torch.no_grad()
    def step(self, params: Mapping[str, torch.Tensor], grads: Mapping[str, torch.Tensor | None]) -> None:
        """One optimisation step of every member; parameters without a gradient are skipped."""
        for name in self.hyper:
            grad = grads.get(name)
            if grad is None:
                continue
            param = params[name]
            state = self.state.get(name)
            if state is None:
                state = self.state[name] = self._new_state(name, param)
            self._update(name, param, grad, state)

    def select(self, index: torch.Tensor) -> None:
        """Keep the state of the members at ``index`` (in that order), drop the others."""
        for state in self.state.values():
            for key, value in state.items():
                state[key] = value.index_select(0, index.to(value.device))

    def extend(self, params: Mapping[str, torch.Tensor], n_new: int) -> None:
        """Append fresh state for ``n_new`` members (``params``: the stacked parameters after)."""
        for name, state in self.state.items():
            fresh = self._new_state(name, params[name][-n_new:])
            for key in state:
                state[key] = torch.cat([state[key], fresh[key]])


class PackedSGD(PackedOptimizer):
    """``torch.optim.SGD`` (momentum, dampening, Nesterov, weight decay, maximize) per member."""

    def _new_state(self, name: str, param: torch.Tensor) -> dict[str, torch.Tensor]:
        state = {"step": torch.zeros(len(param), dtype=torch.float64, device=param.device)}
        if self.hyper[name]["momentum"] != 0:
            state["momentum_buffer"] = torch.zeros_like(param)
        return state

    def _update(
        self, name: str, param: torch.Tensor, grad: torch.Tensor, state: dict[str, torch.Tensor]
    ) -> None:
        h = self.hyper[name]
        grad = -grad if h.get("maximize", False) else grad
        if h["weight_decay"] != 0:
            grad = grad.add(param, alpha=h["weight_decay"])
        if h["momentum"] != 0:
            buf = state["momentum_buffer"]
            # torch starts the buffer at the first gradient itself, undamped.
            first = _per_member(state["step"] == 0, param)
            buf.copy_(torch.where(first, grad, buf * h["momentum"] + grad * (1 - h["dampening"])))
            grad = grad.add(buf, alpha=h["momentum"]) if h["nesterov"] else buf
        param.add_(grad, alpha=-h["lr"])
        state["step"] += 1


class PackedAdam(PackedOptimizer):
    """``torch.optim.Adam`` and ``AdamW`` (amsgrad, maximize, coupled or decoupled decay) per member."""

    def _new_state(self, name: str, param: torch.Tensor) -> dict[str, torch.Tensor]:
        state = {
            "step": torch.zeros(len(param), dtype=torch.float64, device=param.device),
            "exp_avg": torch.zeros_like(param),
            "exp_avg_sq": torch.zeros_like(param),
        }
        if self.hyper[name].get("amsgrad", False):
            state["max_exp_avg_sq"] = torch.zeros_like(param)
        return state

    def _update(
        self, name: str, param: torch.Tensor, grad: torch.Tensor, state: dict[str, torch.Tensor]
    ) -> None:
        h = self.hyper[name]
        lr, (beta1, beta2), eps, decay = h["lr"], h["betas"], h["eps"], h["weight_decay"]
        grad = -grad if h.get("maximize", False) else grad
        state["step"] += 1
        if decay != 0:
            if h["decoupled_weight_decay"]:
                param.mul_(1 - lr * decay)
            else:
                grad = grad.add(param, alpha=decay)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step = state["step"]  # float64, as torch's Python-float bias corrections
        step_size = _per_member(lr / (1 - beta1**step), param)
        correction2_sqrt = _per_member((1 - beta2**step).sqrt(), param)
        if h.get("amsgrad", False):
            torch.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            exp_avg_sq = state["max_exp_avg_sq"]
        # param -= step_size * exp_avg / (sqrt(v) / c2 + eps), with one temporary tensor.
        denom = exp_avg_sq.sqrt().div_(correction2_sqrt).add_(eps).div_(step_size)
        param.addcdiv_(exp_avg, denom, value=-1.0)


def _per_member(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``values`` of shape (K,) reshaped to broadcast over a stacked (K, ...) tensor."""
    out = values.view((-1,) + (1,) * (like.dim() - 1))
    return out if out.dtype == torch.bool else out.to(like.dtype)


# torch optimiser class -> its packed version. Exact classes: a subclass may change `step`.
OPTIMIZERS: dict[type[torch.optim.Optimizer], type[PackedOptimizer]] = {
    torch.optim.SGD: PackedSGD,
    torch.optim.Adam: PackedAdam,
    torch.optim.AdamW: PackedAdam,
}
_HYPER_KEYS = {
    PackedSGD: ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize"),
    PackedAdam: (
        "lr",
        "betas",
        "eps",
        "weight_decay",
        "amsgrad",
        "maximize",
        "decoupled_weight_decay",
    ),
}


def packed_optimizer(model: nn.Module) -> PackedOptimizer:
    """The packed version of what ``model.configure_optimizers()`` returns.

    Raises:
        PackingError: If the model has no ``configure_optimizers``, it fails outside a
            Trainer, returns several optimisers or an LR scheduler, or its optimiser
            is not one of SGD, Adam, AdamW (LBFGS and others are not element-wise or not
            implemented per member).
    """
    name = type(model).__name__
    if not hasattr(model, "configure_optimizers"):
        raise PackingError(
            f"{name} has no configure_optimizers(): packed training takes the optimiser from it."
        )
    try:
        configured = model.configure_optimizers()  # type: ignore[operator]
    except Exception as err:
        raise PackingError(
            f"{name}.configure_optimizers() failed outside a Trainer ({type(err).__name__}: {err}); "
            "packed training calls it on a bare module."
        ) from err
    optimizer = _single_optimizer(configured, name)
    packed_cls = OPTIMIZERS.get(type(optimizer))
    if packed_cls is None:
        raise PackingError(
            f"{name}.configure_optimizers() returns {type(optimizer).__name__}, which packed training "
            f"cannot run per member; supported: {', '.join(c.__name__ for c in OPTIMIZERS)}. "
            "Run it unpacked (search.pack: 1) or with --workers-per-gpu."
        )
    names = {id(p): n for n, p in model.named_parameters()}
    hyper: dict[str, Hyper] = {}
    for group in optimizer.param_groups:
        values = {k: _scalar(group[k]) for k in _HYPER_KEYS[packed_cls] if k in group}
        values.setdefault("decoupled_weight_decay", isinstance(optimizer, torch.optim.AdamW))
        for param in group["params"]:
            if param.requires_grad and id(param) in names:
                hyper[names[id(param)]] = values
    return packed_cls(hyper=hyper)


def _single_optimizer(configured: Any, name: str) -> torch.optim.Optimizer:
    scheduler: Any = None
    optimizer: Any
    if isinstance(configured, Mapping):
        optimizer, scheduler = configured.get("optimizer"), configured.get("lr_scheduler")
    elif isinstance(configured, (list, tuple)):
        if len(configured) == 2 and isinstance(configured[0], (list, tuple)):
            optimizers, schedulers = configured
            scheduler = schedulers[0] if schedulers else None
        else:
            optimizers = configured
        if len(optimizers) != 1:
            raise PackingError(
                f"{name}.configure_optimizers() returns {len(optimizers)} optimisers; packing needs one."
            )
        optimizer = optimizers[0]
        if isinstance(optimizer, Mapping):
            optimizer, scheduler = optimizer.get("optimizer"), optimizer.get("lr_scheduler")
    else:
        optimizer = configured
    if scheduler is not None:
        raise PackingError(
            f"{name}.configure_optimizers() returns a learning-rate scheduler; packed populations "
            "cannot replicate schedulers per member. Remove it or run unpacked (search.pack: 1)."
        )
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise PackingError(
            f"{name}.configure_optimizers() returns no torch optimiser; got {type(optimizer).__name__}."
        )
    return optimizer


def _scalar(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item()
    if isinstance(value, tuple):
        return tuple(_scalar(v) for v in value)
    return value
