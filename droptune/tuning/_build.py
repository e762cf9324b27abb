"""Build a study's model and data, and find the example input that types its sites."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

from droptune.config import StudySpec
from droptune.exceptions import ConfigError
from droptune.sites import DropoutSite, discover


def build(spec: StudySpec) -> tuple[pl.LightningModule, pl.LightningDataModule]:
    """Instantiate the study's LightningModule and LightningDataModule from their specs."""
    return build_model(spec), _build_part(spec, "data")


def build_model(spec: StudySpec) -> pl.LightningModule:
    """Instantiate the study's LightningModule from its spec."""
    return _build_part(spec, "model")


def _build_part(spec: StudySpec, key: str) -> Any:
    part = getattr(spec, key)
    try:
        return part.build()
    except TypeError as err:  # bad init_args
        raise ConfigError(f"{spec.source or 'study'}: {key}.init_args for {part.class_path}: {err}.") from None


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
