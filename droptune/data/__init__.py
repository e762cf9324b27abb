"""Built-in data, all offline: MNIST-1D (generated locally) and scikit-learn's digits."""

from __future__ import annotations

from droptune.data._base import SplitDataModule
from droptune.data._digits import DigitsDataModule, DigitsView
from droptune.data._mnist1d import Mnist1dDataModule

__all__ = ["DigitsDataModule", "DigitsView", "Mnist1dDataModule", "SplitDataModule"]
