"""The top-level package: its public names resolve, and applying rates stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import droptune


@pytest.mark.parametrize("name", droptune.__all__)
def test_every_public_name_resolves(name):
    assert getattr(droptune, name) is not None


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        droptune.nope  # noqa: B018


def test_training_code_that_only_applies_rates_does_not_import_the_tuning_stack():
    code = "import sys, droptune; print(sorted(m for m in ('optuna', 'mlflow', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
