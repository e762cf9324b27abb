"""Find the example input that types a study's sites, and the sites (building: :mod:`droptune.config._build`)."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

from droptune.config import StudySpec, build, build_model
from droptune.sites import DropoutSite, discover

__all__ = ["build", "build_model", "example_input", "model_sites"]  # build*: the engine's names for them


def example_input(model: pl.LightningModule, data: pl.LightningDataModule) -> Any:
    """One input for ``model(...)``: its ``example_input_array``, else the first training batch's x."""
    if getattr(model, "example_input_array", None) is not None:
        return model.example_input_array
    data.prepare_data()
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    if isinstance(batch, (tuple, list)):
        batch = batch[0]
    if not isinstance(batch, torch.Tensor):
        return None  # a dict batch has no universal "input" key: structure decides
    # Two rows type the sites as well as a whole batch, and keep this CPU forward pass cheap
    # for large models (it runs once per trial).
    return batch[:2]


def model_sites(spec: StudySpec, model: pl.LightningModule, data: pl.LightningDataModule) -> list[DropoutSite]:
    """The model's dropout sites, typed by an example forward pass and the study's overrides."""
    return discover(model, example_input(model, data), layer_types=spec.search.layer_types)
