"""Packed optimisers step every member exactly as torch's optimiser steps it alone."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from droptune.exceptions import PackingError
from droptune.packing import PackedAdam, PackedSGD, packed_optimizer

Make = Callable[[list[nn.Parameter]], torch.optim.Optimizer]

CASES: dict[str, Make] = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.1),
    "sgd-momentum-wd": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01),
    "sgd-nesterov-maximize": lambda p: torch.optim.SGD(
        p, lr=0.05, momentum=0.8, nesterov=True, maximize=True
    ),
    "adam": lambda p: torch.optim.Adam(p, lr=0.01),
    "adam-l2-amsgrad": lambda p: torch.optim.Adam(
        p, lr=0.01, weight_decay=0.1, amsgrad=True, betas=(0.8, 0.95)
    ),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.05),
    "adamw-maximize-eps": lambda p: torch.optim.AdamW(p, lr=0.02, eps=1e-3, maximize=True),
}


class Net(nn.Module):
    def __init__(self, make: Make) -> None:
        super().__init__()
        self.make = make
        self.fc = nn.Linear(5, 4)
        self.out = nn.Linear(4, 2, bias=False)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.make(list(self.parameters()))


def _stack(nets: list[Net]) -> dict[str, torch.Tensor]:
    return {
        n: torch.stack([dict(m.named_parameters())[n].detach().clone() for m in nets])
        for n, _ in nets[0].named_parameters()
    }


@pytest.mark.parametrize("make", list(CASES.values()), ids=list(CASES))
def test_every_member_steps_as_torch_would_alone_even_after_a_refill(make: Make) -> None:
    torch.manual_seed(0)
    nets = [Net(make) for _ in range(3)]
    references = [net.configure_optimizers() for net in nets]
    packed = packed_optimizer(nets[0])
    params = _stack(nets)
    names = list(params)

    def step() -> None:
        grads = {n: torch.randn_like(params[n]) for n in names}
        for k, (net, opt) in enumerate(zip(nets, references)):
            for n, p in net.named_parameters():
                p.grad = grads[n][k].clone()
            opt.step()
        packed.step(params, grads)

    for _ in range(4):
        step()
    # Member 1 leaves; a fresh member joins at the end, with fresh state (step 0 bias correction).
    newcomer = Net(make)
    nets = [nets[0], nets[2], newcomer]
    references = [references[0], references[2], newcomer.configure_optimizers()]
    keep = torch.tensor([0, 2])
    params = {
        n: torch.cat([params[n][keep], dict(newcomer.named_parameters())[n].detach()[None]]) for n in names
    }
    packed.select(keep)
    packed.extend(params, 1)
    for _ in range(4):
        step()
    for k, net in enumerate(nets):
        for n, p in net.named_parameters():
            torch.testing.assert_close(params[n][k], p.detach(), rtol=1e-5, atol=1e-6)


def test_param_groups_keep_their_own_hyper_parameters() -> None:
    class Groups(Net):
        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.AdamW(
                [
                    {"params": self.fc.parameters(), "weight_decay": 0.0},
                    {"params": self.out.parameters()},
                ],
                lr=0.01,
                weight_decay=0.3,
            )

    packed = packed_optimizer(Groups(CASES["adam"]))
    assert isinstance(packed, PackedAdam)
    assert packed.hyper["fc.weight"]["weight_decay"] == 0.0
    assert packed.hyper["out.weight"]["weight_decay"] == 0.3
    assert packed.hyper["out.weight"]["decoupled_weight_decay"] is True


def test_sgd_is_packed_as_sgd() -> None:
    assert isinstance(packed_optimizer(Net(CASES["sgd"])), PackedSGD)


@pytest.mark.parametrize(
    ("configured", "match"),
    [
        (lambda net: torch.optim.LBFGS(net.parameters()), "LBFGS.*supported: SGD, Adam, AdamW"),
        (lambda net: torch.optim.Adagrad(net.parameters()), "Adagrad"),
        (
            lambda net: (
                [opt := torch.optim.Adam(net.parameters())],
                [torch.optim.lr_scheduler.StepLR(opt, step_size=1)],
            ),
            "scheduler",
        ),
        (
            lambda net: {
                "optimizer": (opt := torch.optim.SGD(net.parameters(), lr=0.1)),
                "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=1),
            },
            "scheduler",
        ),
        (
            lambda net: [
                torch.optim.SGD(net.fc.parameters(), lr=0.1),
                torch.optim.SGD(net.out.parameters(), lr=0.1),
            ],
            "2 optimisers",
        ),
    ],
    ids=["lbfgs", "adagrad", "scheduler-tuple", "scheduler-dict", "two-optimizers"],
)
def test_optimisers_that_cannot_run_per_member_are_refused(configured: Callable, match: str) -> None:
    class Custom(Net):
        def configure_optimizers(self):  # type: ignore[no-untyped-def]
            return configured(self)

    with pytest.raises(PackingError, match=match):
        packed_optimizer(Custom(CASES["sgd"]))


def test_a_configure_optimizers_that_needs_a_trainer_is_a_packing_error() -> None:
    class NeedsTrainer(Net):
        def configure_optimizers(self) -> torch.optim.Optimizer:
            raise RuntimeError("not attached to a Trainer")

    with pytest.raises(PackingError, match="failed outside a Trainer"):
        packed_optimizer(NeedsTrainer(CASES["sgd"]))
