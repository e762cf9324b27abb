"""A population trains each member as that member would be trained on its own."""

from __future__ import annotations

import copy
import itertools
import math
import statistics
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from droptune.exceptions import PackingError
from droptune.models import MLP, DigitsCNN, Mnist1dCNN, PatchTransformer
from droptune.packing import PackedData, Population, packable_copy, packed_optimizer, resolve_loss
from droptune.testing import TinyDataModule, TinyModule

CPU = torch.device("cpu")


def _population(template: nn.Module, *, device: torch.device = CPU) -> Population:
    base, buffers = packable_copy(template)
    loss_fn, classify = resolve_loss(None, template)
    return Population(
        base=base,
        rate_buffers=buffers,
        loss_fn=loss_fn,
        optimizer=packed_optimizer(template),
        device=device,
        classify=classify,
    )


def _members(n: int, **kwargs: float) -> list[TinyModule]:
    models = []
    for seed in range(n):
        torch.manual_seed(seed)
        models.append(TinyModule(**kwargs))
    return models


def _epoch(loader: DataLoader) -> Iterator:
    """One epoch of ``loader`` as Lightning takes it: len() batches, the sampler not exhausted."""
    return itertools.islice(loader, len(loader))


def _train_alone(model: TinyModule, data: TinyDataModule, epochs: int) -> list[float]:
    """The reference: a plain training loop over the datamodule's own loader."""
    optimizer = model.configure_optimizers()
    loader = data.train_dataloader()
    losses = []
    model.train()
    for _ in range(epochs):
        batch_losses = []
        for x, y in _epoch(loader):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            batch_losses.append(loss.item())
        losses.append(statistics.fmean(batch_losses))
    return losses


def _val_loss(model: nn.Module, data: TinyDataModule) -> float:
    model.eval()
    with torch.no_grad():
        x, y = data.val_dataset.tensors
        return F.cross_entropy(model(x), y).item()


def test_a_member_without_dropout_trains_exactly_as_alone_beside_members_with_dropout() -> None:
    data = TinyDataModule()
    models = _members(3, p=0.0, input_p=0.0)
    references = [copy.deepcopy(m) for m in models]
    population = _population(models[0])
    packed = PackedData.from_datamodule(TinyDataModule(), device=CPU, seed=0)
    no_dropout = {"input_dropout": 0.0, "dropout": 0.0}
    population.add(models, [no_dropout, {"input_dropout": 0.2, "dropout": 0.5}, no_dropout])
    packed_losses = [population.train_epoch(packed.train_batches()) for _ in range(3)]
    val_loss, val_acc = population.evaluate(packed.x_val, packed.y_val, packed.eval_batch_size)
    for member in (0, 2):
        alone = _train_alone(references[member], data, epochs=3)
        assert [e[member].item() for e in packed_losses] == pytest.approx(alone, rel=1e-5, abs=1e-6)
        assert val_loss[member].item() == pytest.approx(_val_loss(references[member], data), rel=1e-5)
    assert val_acc is not None and 0.0 <= val_acc.min() <= val_acc.max() <= 1.0
    # The member with dropout trained differently (its own rates, its own masks).
    assert abs(packed_losses[-1][1].item() - packed_losses[-1][0].item()) > 1e-4


def test_with_dropout_on_packed_members_train_as_unpacked_runs_in_distribution() -> None:
    rates = {"input_dropout": 0.1, "dropout": 0.5}
    n = 24
    torch.manual_seed(0)
    template = TinyModule(input_p=0.1, p=0.5)
    population = _population(template)
    packed = PackedData.from_datamodule(TinyDataModule(), device=CPU, seed=0)
    population.add([copy.deepcopy(template) for _ in range(n)], [rates] * n)
    for _ in range(3):
        population.train_epoch(packed.train_batches())
    packed_val = population.evaluate(packed.x_val, packed.y_val, packed.eval_batch_size)[0].tolist()
    alone_val = []
    for seed in range(n):
        model = copy.deepcopy(template)
        torch.manual_seed(1000 + seed)  # each run its own dropout masks
        data = TinyDataModule()
        _train_alone(model, data, epochs=3)
        alone_val.append(_val_loss(model, data))
    assert len(set(packed_val)) == n  # members drew different masks
    spread = math.sqrt(statistics.variance(packed_val) / n + statistics.variance(alone_val) / n)
    assert abs(statistics.fmean(packed_val) - statistics.fmean(alone_val)) < 4 * spread
    assert 0.5 < statistics.stdev(packed_val) / statistics.stdev(alone_val) < 2.0


def test_members_leave_and_join_without_disturbing_the_others() -> None:
    data = TinyDataModule()
    models = _members(4, p=0.0, input_p=0.0)
    reference = copy.deepcopy(models[2])
    population = _population(models[0])
    packed = PackedData.from_datamodule(TinyDataModule(), device=CPU, seed=0)
    zero = {"input_dropout": 0.0, "dropout": 0.0}
    population.add(models[:3], [zero] * 3)
    first = population.train_epoch(packed.train_batches())
    population.keep([2])  # members 0 and 1 leave after one epoch
    newcomer = copy.deepcopy(models[3])
    population.add([models[3]], [zero])
    second = population.train_epoch(packed.train_batches())
    assert population.size == 2
    assert population.rates()["dropout"].tolist() == [0.0, 0.0]
    alone = _train_alone(reference, data, epochs=2)
    assert [first[2].item(), second[0].item()] == pytest.approx(alone, rel=1e-5)
    # The newcomer's first epoch is a first epoch: fresh Adam state, batches of epoch 2.
    optimizer = newcomer.configure_optimizers()
    loader = data.train_dataloader()
    list(_epoch(loader))  # the population's loader is in its second epoch
    batch_losses = []
    for x, y in _epoch(loader):
        loss = F.cross_entropy(newcomer(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        batch_losses.append(loss.item())
    assert second[1].item() == pytest.approx(statistics.fmean(batch_losses), rel=1e-5)


@pytest.mark.parametrize(
    ("model", "shape"),
    [
        (MLP(), (40,)),
        (Mnist1dCNN(), (40,)),
        (DigitsCNN(), (1, 8, 8)),
        (PatchTransformer(drop_path=0.1), (16, 4)),
    ],
    ids=["MLP", "Mnist1dCNN", "DigitsCNN", "PatchTransformer"],
)
def test_builtin_models_train_packed_and_evaluate_as_themselves(
    model: nn.Module, shape: tuple[int, ...]
) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(8, *shape), torch.randint(0, 10, (8,))
    population = _population(model)
    population.probe(x[:2], y[:2])
    members = [copy.deepcopy(model) for _ in range(3)]
    rates = [{name: rate for name in population.rate_buffers} for rate in (0.0, 0.1, 0.3)]
    population.add(members, rates)
    expected = [F.cross_entropy(m.eval()(x), y).item() for m in members]
    loss, _ = population.evaluate(x, y, batch_size=8)
    assert loss.tolist() == pytest.approx(expected, rel=1e-5)
    train_loss = population.train_epoch([(x, y)] * 2)
    assert torch.isfinite(train_loss).all()
    after, _ = population.evaluate(x, y, batch_size=8)
    assert (after < loss).all()  # two AdamW steps on the same batch lower its loss


class DataDependent(TinyModule):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        return out * 2 if out.sum() > 0 else out  # Python control flow on a tensor's value


def test_a_model_that_fails_under_vmap_is_refused_at_the_probe() -> None:
    population = _population(DataDependent())
    with pytest.raises(PackingError, match="under torch.vmap it failed.*--workers-per-gpu"):
        population.probe(torch.randn(2, 8), torch.tensor([0, 1]))


def test_a_loss_that_is_not_a_scalar_is_refused() -> None:
    template = TinyModule()
    base, buffers = packable_copy(template)
    population = Population(
        base=base,
        rate_buffers=buffers,
        loss_fn=lambda out, y: F.cross_entropy(out, y, reduction="none"),
        optimizer=packed_optimizer(template),
        device=CPU,
    )
    with pytest.raises(PackingError, match="must be a scalar"):
        population.probe(torch.randn(2, 8), torch.tensor([0, 1]))


def test_the_loss_comes_from_the_study_file_or_the_model() -> None:
    assert resolve_loss("cross_entropy", nn.Linear(2, 2)) == (F.cross_entropy, True)
    assert resolve_loss("mse", nn.Linear(2, 2)) == (F.mse_loss, False)
    huber, classify = resolve_loss("torch.nn.HuberLoss", nn.Linear(2, 2))
    assert isinstance(huber, nn.HuberLoss) and not classify
    assert resolve_loss(None, TinyModule()) == (F.cross_entropy, True)
    with pytest.raises(PackingError, match="set `loss:` in the study file"):
        resolve_loss(None, nn.Linear(2, 2))


@pytest.mark.gpu
def test_a_population_on_the_gpu_trains_as_on_the_cpu() -> None:
    models = _members(3, p=0.0, input_p=0.0)
    zero = {"input_dropout": 0.0, "dropout": 0.0}
    losses = {}
    for name in ("cpu", "cuda"):
        device = torch.device(name)
        population = _population(models[0], device=device)
        population.probe(torch.randn(2, 8, device=device), torch.tensor([0, 1], device=device))
        packed = PackedData.from_datamodule(TinyDataModule(), device=device, seed=0)
        assert packed.x_val.device.type == name and packed.x_train.device.type == name
        population.add([copy.deepcopy(m) for m in models], [zero] * 3)
        epochs = [population.train_epoch(packed.train_batches()) for _ in range(3)]
        val_loss, val_acc = population.evaluate(packed.x_val, packed.y_val, packed.eval_batch_size)
        assert epochs[0].device.type == name
        losses[name] = torch.stack([*epochs, val_loss, val_acc]).cpu()
    torch.testing.assert_close(losses["cuda"], losses["cpu"], rtol=1e-4, atol=1e-5)


def test_bf16_mixed_precision_trains_members_in_autocast() -> None:
    template = TinyModule()
    base, buffers = packable_copy(template)
    population = Population(
        base=base,
        rate_buffers=buffers,
        loss_fn=F.cross_entropy,
        optimizer=packed_optimizer(template),
        device=CPU,
        classify=True,
        autocast=torch.bfloat16,
    )
    packed = PackedData.from_datamodule(TinyDataModule(), device=CPU, seed=0)
    population.add(_members(2), [{"input_dropout": 0.1, "dropout": 0.5}] * 2)
    first = population.train_epoch(packed.train_batches())
    for _ in range(3):
        last = population.train_epoch(packed.train_batches())
    assert torch.isfinite(last).all() and (last < first).all()
    assert population.params["fc1.weight"].dtype == torch.float32  # master weights stay fp32
