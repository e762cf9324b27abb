"""The base LightningModule of the built-in classifiers: one logging and optimiser contract."""

from __future__ import annotations

from typing import Any, ClassVar

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from typing_extensions import override


class ClassifierModule(pl.LightningModule):
    """A classifier trained with cross-entropy and AdamW; subclasses define ``forward``.

    Subclasses call ``self.save_hyperparameters()`` in ``__init__`` and must have ``lr``
    and ``weight_decay`` among their arguments. Logged, per epoch (step = epoch):
    ``train_loss`` (as trained, dropout on), ``val_loss``, ``val_acc``, ``test_loss``,
    ``test_acc``.

    Attributes:
        loss_fn: ``loss_fn(logits, target) -> loss``, the mean cross-entropy; a class
            attribute so that code training many copies at once can reuse it.
    """

    loss_fn: ClassVar[Any] = staticmethod(F.cross_entropy)

    def step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(loss, accuracy)`` of the model on one ``(x, y)`` batch."""
        x, y = batch
        logits = self(x)
        loss = self.loss_fn(logits, y)
        acc = (logits.argmax(dim=-1) == y).float().mean()
        return loss, acc

    @override
    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        loss, _ = self.step(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch[1]))
        return loss

    @override
    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._log_eval("val", batch)

    @override
    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._log_eval("test", batch)

    @override
    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.parameters(), lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"]
        )

    def _log_eval(self, prefix: str, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        loss, acc = self.step(batch)
        size = len(batch[1])
        self.log(
            f"{prefix}_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=size
        )
        self.log(f"{prefix}_acc", acc, on_step=False, on_epoch=True, prog_bar=True, batch_size=size)
