"""Build a study's model and data from its spec: below the engine and the pre-flight, which both build."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from droptune.exceptions import ConfigError

if TYPE_CHECKING:
    import lightning.pytorch as pl

    from droptune.config._spec import StudySpec

__all__ = ["build", "build_model"]


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
