"""Tests of droptune.models: shapes, dropout sites, determinism, training and logging."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from droptune import apply_rates, discover
from droptune.data import DigitsDataModule, Mnist1dDataModule
from droptune.data._base import SplitDataModule
from droptune.models import (
    MLP,
    ClassifierModule,
    DigitsCNN,
    Mnist1dCNN,
    PatchTransformer,
    RecurrentClassifier,
)


@dataclass(frozen=True)
class Case:
    model: Callable[..., ClassifierModule]
    data: Callable[..., SplitDataModule]
    sites: list[tuple[str, str]]  # (name, layer type) as discover finds them, in order
    model_kwargs: dict[str, object]
    learn_lr: float  # a learning rate that shows progress within a few epochs


def _digits(view: str) -> Callable[..., SplitDataModule]:
    return lambda **kw: DigitsDataModule(view=view, **kw)  # type: ignore[arg-type]


CASES = {
    "mlp-mnist1d": Case(
        MLP,
        Mnist1dDataModule,
        [("input_dropout", "input"), ("hidden.2", "dense"), ("hidden.5", "dense")],
        {},
        3e-3,
    ),
    "mlp-digits": Case(
        MLP,
        _digits("flat"),
        [("input_dropout", "input"), ("hidden.2", "dense"), ("hidden.5", "dense")],
        {"in_features": 64},
        3e-3,
    ),
    "cnn-mnist1d": Case(
        Mnist1dCNN,
        Mnist1dDataModule,
        [
            ("features.2", "spatial"),
            ("features.5", "spatial"),
            ("features.8", "spatial"),
            ("head.3", "dense"),
        ],
        {},
        3e-3,
    ),
    "cnn-digits": Case(
        DigitsCNN,
        _digits("image"),
        [
            ("features.2", "spatial"),
            ("features.6", "spatial"),
            ("features.10", "spatial"),
            ("head.3", "dense"),
        ],
        {},
        3e-3,
    ),
    "lstm-digits": Case(
        RecurrentClassifier,
        _digits("sequence"),
        [
            ("input_dropout", "recurrent"),
            ("rnn.dropout", "recurrent"),
            ("output_dropout", "recurrent"),
        ],
        {},
        1e-2,
    ),
    "transformer-digits": Case(
        PatchTransformer,
        _digits("patches"),
        [
            (f"blocks.{i}.{name}", kind)
            for i in range(2)
            for name, kind in (
                ("attn.dropout", "attention"),
                ("drop_path.drop_prob", "residual"),
                ("mlp.2", "hidden"),  # inside the MLP's residual branch
                ("mlp.4", "hidden"),
            )
        ],
        {},
        3e-3,
    ),
}
IDS = list(CASES)


def small_data(case: Case, train_size: int = 250, batch_size: int = 64) -> SplitDataModule:
    return case.data(train_size=train_size, batch_size=batch_size)


def build(case: Case, seed: int = 0, **kwargs: object) -> ClassifierModule:
    torch.manual_seed(seed)
    return case.model(**case.model_kwargs, **kwargs)


def trainer(epochs: int, callbacks: list[pl.Callback] | None = None) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=callbacks or [],
    )


class ValLossHistory(pl.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_validation_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.losses.append(float(trainer.callback_metrics["val_loss"]))


@pytest.mark.parametrize("name", IDS, ids=IDS)
def test_forward_gives_logits_per_row(name: str) -> None:
    case = CASES[name]
    data = small_data(case)
    x, _ = next(iter(data.val_dataloader()))
    assert tuple(x.shape[1:]) == data.input_shape
    logits = build(case).eval()(x)
    assert tuple(logits.shape) == (len(x), 10) and logits.dtype == torch.float32


@pytest.mark.parametrize("name", IDS, ids=IDS)
def test_discover_finds_the_expected_sites(name: str) -> None:
    case = CASES[name]
    x, _ = next(iter(small_data(case).val_dataloader()))
    model = build(case)
    traced = [(site.name, site.layer_type) for site in discover(model, example_input=x)]
    assert traced == case.sites
    structural = [(site.name, site.layer_type) for site in discover(model)]
    assert structural == case.sites


@pytest.mark.parametrize("name", IDS, ids=IDS)
def test_construction_is_deterministic_and_batchnorm_free(name: str) -> None:
    case = CASES[name]
    a, b = build(case, seed=1), build(case, seed=1)
    for (key, ta), tb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(ta, tb), key
    assert not torch.equal(next(build(case, seed=2).parameters()), next(a.parameters()))
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in a.modules())


@pytest.mark.parametrize("name", IDS, ids=IDS)
def test_dropout_is_active_in_training_only(name: str) -> None:
    case = CASES[name]
    x, _ = next(iter(small_data(case).val_dataloader()))
    model = build(case)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))
    apply_rates(model, {site.name: 0.0 for site in discover(model)})
    assert torch.allclose(model(x), model.eval()(x), atol=1e-5)  # all rates 0: no noise left


@pytest.mark.parametrize("name", IDS, ids=IDS)
def test_hyperparameters_and_optimizer(name: str) -> None:
    case = CASES[name]
    model = build(case, lr=0.02, weight_decay=0.001)
    assert model.hparams["lr"] == 0.02
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults["lr"] == 0.02 and optimizer.defaults["weight_decay"] == 0.001
    assert model.loss_fn is F.cross_entropy


@pytest.mark.parametrize("name", IDS, ids=IDS)
def test_one_epoch_fit_logs_the_metric_contract(name: str) -> None:
    case = CASES[name]
    model, data = build(case), small_data(case, train_size=100)
    fit_trainer = trainer(1)
    fit_trainer.fit(model, data)
    metrics = fit_trainer.callback_metrics
    assert {"train_loss", "val_loss", "val_acc"} <= set(metrics)
    assert all(math.isfinite(float(metrics[key])) for key in ("train_loss", "val_loss"))
    assert 0.0 <= float(metrics["val_acc"]) <= 1.0
    results = fit_trainer.test(model, data, verbose=False)
    assert set(results[0]) == {"test_loss", "test_acc"}


@pytest.mark.parametrize("name", IDS, ids=IDS)
def test_model_learns_in_a_few_epochs(name: str) -> None:
    case = CASES[name]
    history = ValLossHistory()
    data = small_data(case, train_size=400, batch_size=32)
    trainer(4, [history]).fit(build(case, lr=case.learn_lr), data)
    assert len(history.losses) == 4
    assert history.losses[-1] < history.losses[0] - 0.05, history.losses


def test_rates_come_from_the_constructor() -> None:
    rates = {s.name: s.rate for s in discover(MLP(input_dropout=0.2, dropout=0.3))}
    assert rates == {"input_dropout": 0.2, "hidden.2": 0.3, "hidden.5": 0.3}
    rates = {s.name: s.rate for s in discover(DigitsCNN(spatial_dropout=0.1, dropout=0.4))}
    assert rates == {"features.2": 0.1, "features.6": 0.1, "features.10": 0.1, "head.3": 0.4}
    lstm = RecurrentClassifier(input_dropout=0.05, rnn_dropout=0.15, output_dropout=0.35)
    assert [s.rate for s in discover(lstm)] == [0.05, 0.15, 0.35]
    assert len(discover(MLP(hidden=(32, 32, 32)))) == 4


def test_transformer_drop_path_grows_linearly_over_depth() -> None:
    model = PatchTransformer(depth=3, drop_path=0.2, attention_dropout=0.05, dropout=0.15)
    rates = {s.name: s.rate for s in discover(model)}
    assert [rates[f"blocks.{i}.drop_path.drop_prob"] for i in range(3)] == [0.0, 0.1, 0.2]
    assert [rates[f"blocks.{i}.attn.dropout"] for i in range(3)] == [0.05] * 3
    assert rates["blocks.2.mlp.2"] == rates["blocks.2.mlp.4"] == 0.15
    assert discover(PatchTransformer(depth=1, drop_path=0.2))[1].rate == 0.2


def test_mlp_and_cnn_reject_invalid_rates() -> None:
    with pytest.raises(ValueError, match="dropout probability"):
        MLP(dropout=1.5)
    with pytest.raises(ValueError, match="drop_prob"):
        PatchTransformer(drop_path=1.0)
