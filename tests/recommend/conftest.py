"""Build droptune-like Optuna studies in memory, fast, with known trials."""

from __future__ import annotations

import functools
from collections.abc import Callable

import optuna
import pytest

from droptune import testing

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Three sites of a small model: two dense ones and an input one.
TYPES = {"input_dropout": "input", "fc.1": "dense", "fc.4": "dense"}


@pytest.fixture
def make_study() -> Callable[..., optuna.Study]:
    """``make_study(name, direction)``: an empty in-memory study."""

    def make(name: str = "s", direction: str = "minimize") -> optuna.Study:
        return optuna.create_study(study_name=name, direction=direction)

    return make


@pytest.fixture
def add_trial() -> Callable[..., None]:
    """``add_trial(study, rates, value, ...)``: droptune.testing's, with :data:`TYPES` by default."""
    return functools.partial(testing.add_trial, layer_types=TYPES)
