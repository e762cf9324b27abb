"""Pieces shared by droptune's built-in data modules: argument checks, splits, loaders."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset

from droptune.exceptions import ConfigError


def check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """Return ``value`` if it is an int in ``[low, high]`` (no upper bound when ``high`` is None).

    Raises:
        ConfigError: Naming the argument, the value received and the valid range.
    """
    valid = f"[{low}, {high}]" if high is not None else f">= {low}"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an int {valid}; got {value!r}.")
    if value < low or (high is not None and value > high):
        raise ConfigError(f"{name} must be an int in {valid}; got {value!r}.")
    return int(value)


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``.

    Raises:
        ConfigError: Naming the argument, the value received and the valid choices.
    """
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}.")
    return str(value)


def stratified_split(y: np.ndarray, n_take: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split the row indices of ``y`` into ``n_take`` rows and the rest, stratified by label.

    Returns:
        ``(taken, rest)``, each a sorted array of row indices.
    """
    rows = np.arange(len(y))
    if n_take >= len(y):
        return rows, rows[:0]
    taken, rest = train_test_split(rows, train_size=n_take, stratify=y, random_state=seed)
    return np.sort(taken), np.sort(rest)


def tensor_dataset(x: np.ndarray, y: np.ndarray) -> TensorDataset:
    """Wrap arrays as a ``TensorDataset`` of float32 inputs and int64 labels (copies)."""
    return TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.int64))


def make_loader(
    dataset: TensorDataset,
    *,
    batch_size: int,
    num_workers: int,
    shuffle: bool,
    seed: int,
) -> DataLoader:
    """A ``DataLoader``; a shuffled one draws its order from a generator seeded with ``seed``.

    A fresh generator per call makes every ``fit`` see the same sequence of epoch orders.
    """
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )
