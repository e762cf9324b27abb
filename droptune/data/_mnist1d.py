"""MNIST-1D (Greydanus, 2020), generated locally: 40-sample 1-D signals of 10 digit classes."""

from __future__ import annotations

import functools
import random

import numpy as np
from torch.utils.data import TensorDataset
from typing_extensions import override

from droptune.data._base import SplitDataModule
from droptune.data._common import check_int, stratified_split, tensor_dataset

TRAIN_POOL = 4000
VAL_SIZE = 1000
TEST_SIZE = 1000
GENERATOR_SEED = 42  # mnist1d's own default: the dataset is the same for every user


@functools.lru_cache(maxsize=4)
def generate_mnist1d(
    num_samples: int = TRAIN_POOL + VAL_SIZE + TEST_SIZE, seed: int = GENERATOR_SEED
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Generate MNIST-1D with ``mnist1d.data.make_dataset`` (offline), cached per process.

    ``make_dataset`` reseeds Python's and NumPy's global generators; their states are
    restored afterwards so that generating data does not change anyone's random stream.
    The last ``TEST_SIZE`` rows are the test split, as in ``make_dataset``.

    Args:
        num_samples: Rows to generate in all (train + test); a multiple of 10.
        seed: mnist1d's generation seed.

    Returns:
        ``(x, y, x_test, y_test)``: float32 ``(n, 40)`` signals and int64 labels, read-only.
    """
    from mnist1d.data import get_dataset_args, make_dataset  # slow import (matplotlib)

    args = get_dataset_args()
    args.num_samples = num_samples
    args.train_split = 1.0 - TEST_SIZE / num_samples
    args.seed = seed
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    arrays = (
        data["x"].astype(np.float32),
        data["y"].astype(np.int64),
        data["x_test"].astype(np.float32),
        data["y_test"].astype(np.int64),
    )
    for array in arrays:
        array.setflags(write=False)
    return arrays


class Mnist1dDataModule(SplitDataModule):
    """MNIST-1D as a LightningDataModule: inputs ``(B, 40)`` float32, labels int64.

    6000 rows are generated once per process with mnist1d's default settings and seed
    (42): ``make_dataset`` holds out the last 1000 as the test split, and a stratified
    1000 of the other 5000, chosen by ``seed``, are the validation split. The remaining
    4000 rows are the training pool, the size of MNIST-1D's usual training set. (The rows
    differ from the published ``mnist1d_data.pkl``, which would need a download.)

    Args:
        train_size: Training rows drawn from the 4000-row pool (stratified, seeded), in
            [10, 4000]; ``None`` (default) uses the whole pool. For data-size sweeps.
        batch_size: Rows per batch (default 128).
        seed: Seeds the validation split, the ``train_size`` subsample and the order of
            training batches (default 0).
        num_workers: ``DataLoader`` worker processes (default 0).

    Raises:
        ConfigError: If an argument is out of range.

    Example:
        >>> data = Mnist1dDataModule(train_size=500)
        >>> x, y = next(iter(data.train_dataloader()))
        >>> tuple(x.shape), x.dtype, y.dtype, len(data.train_dataset)
        ((128, 40), torch.float32, torch.int64, 500)
    """

    input_shape: tuple[int, ...] = (40,)

    def __init__(
        self,
        *,
        train_size: int | None = None,
        batch_size: int = 128,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed, num_workers=num_workers)
        self.train_size = (
            TRAIN_POOL
            if train_size is None
            else check_int("train_size", train_size, 10, TRAIN_POOL)
        )

    @override
    def build(self) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
        x, y, x_test, y_test = generate_mnist1d()
        val, pool = stratified_split(y, VAL_SIZE, self.seed)
        train, _ = stratified_split(y[pool], self.train_size, self.seed)
        train = pool[train]
        return (
            tensor_dataset(x[train], y[train]),
            tensor_dataset(x[val], y[val]),
            tensor_dataset(x_test, y_test),
        )
