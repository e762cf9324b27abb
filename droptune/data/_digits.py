"""scikit-learn's bundled 8x8 digits, seen as images, vectors, sequences or patches."""

from __future__ import annotations

import functools
from typing import Literal, get_args

import numpy as np
from torch.utils.data import TensorDataset
from typing_extensions import override

from droptune.data._base import SplitDataModule
from droptune.data._common import check_choice, check_int, stratified_split, tensor_dataset

DigitsView = Literal["image", "flat", "sequence", "patches"]
VIEWS: tuple[str, ...] = get_args(DigitsView)
TEST_SIZE = 400
VAL_SIZE = 400
N_ROWS = 1797  # rows of load_digits
TRAIN_POOL = N_ROWS - TEST_SIZE - VAL_SIZE

INPUT_SHAPES: dict[str, tuple[int, ...]] = {
    "image": (1, 8, 8),
    "flat": (64,),
    "sequence": (8, 8),
    "patches": (16, 4),
}


@functools.lru_cache(maxsize=1)
def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """``load_digits`` as float32 ``(1797, 8, 8)`` images in [0, 1] and int64 labels (cached)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)
    labels = bunch.target.astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def to_view(images: np.ndarray, view: str) -> np.ndarray:
    """Reshape ``(n, 8, 8)`` images to the layout of ``view``.

    ``sequence`` reads the image row by row (8 time steps of 8 pixels); ``patches`` cuts it
    into 16 non-overlapping 2x2 patches in row-major order, each flattened to 4 values.
    """
    n = len(images)
    if view == "image":
        return images.reshape(n, 1, 8, 8)
    if view == "flat":
        return images.reshape(n, 64)
    if view == "sequence":
        return images.reshape(n, 8, 8)
    patches = images.reshape(n, 4, 2, 4, 2).transpose(0, 1, 3, 2, 4)
    return patches.reshape(n, 16, 4)


class DigitsDataModule(SplitDataModule):
    """scikit-learn's ``load_digits`` (1797 8x8 images, offline) as a LightningDataModule.

    Pixels are scaled to [0, 1]. A stratified split seeded by ``seed`` holds out 400 test
    rows and 400 validation rows; the other 997 are the training pool, of which
    ``train_size`` (stratified) are used: 400 by default, small enough that an
    unregularised model overfits.

    Args:
        view: Layout of one input: ``"image"`` ``(1, 8, 8)`` for CNNs, ``"flat"`` ``(64,)``
            for MLPs, ``"sequence"`` ``(8, 8)`` (8 rows as 8 time steps) for recurrent
            models, ``"patches"`` ``(16, 4)`` (16 2x2 patches) for Transformers.
        train_size: Training rows, in [10, 997] (default 400).
        batch_size: Rows per batch (default 64).
        seed: Seeds the splits and the order of training batches (default 0).
        num_workers: ``DataLoader`` worker processes (default 0).

    Raises:
        ConfigError: If ``view`` is unknown or a number is out of range.

    Example:
        >>> data = DigitsDataModule(view="patches")
        >>> x, y = next(iter(data.val_dataloader()))
        >>> tuple(x.shape), data.input_shape, data.num_classes
        ((64, 16, 4), (16, 4), 10)
    """

    def __init__(
        self,
        *,
        view: DigitsView = "image",
        train_size: int = 400,
        batch_size: int = 64,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed, num_workers=num_workers)
        self.view = check_choice("view", view, VIEWS)
        self.train_size = check_int("train_size", train_size, 10, TRAIN_POOL)
        self.input_shape: tuple[int, ...] = INPUT_SHAPES[self.view]

    @override
    def build(self) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
        images, labels = load_digits_arrays()
        x = to_view(images, self.view)
        test, rest = stratified_split(labels, TEST_SIZE, self.seed)
        val, pool = stratified_split(labels[rest], VAL_SIZE, self.seed)
        val, pool = rest[val], rest[pool]
        train, _ = stratified_split(labels[pool], self.train_size, self.seed)
        train = pool[train]
        return (
            tensor_dataset(x[train], labels[train]),
            tensor_dataset(x[val], labels[val]),
            tensor_dataset(x[test], labels[test]),
        )
