"""Site names as MLflow param keys: every name MLflow would refuse made safe, reversibly.

A site's name is its module path, and a module path may hold any character a Python dict key
can (an ``nn.ModuleDict`` key ``head(p)``), while MLflow refuses a param or metric key with
anything but letters, digits, ``_ - . /  :`` and spaces, or one that a path would normalise
differently (``a//b``). :func:`mlflow_key` escapes each character outside a conservative safe
set, ``[A-Za-z0-9_.-]``, as ``_x<hex>_`` (its code point); :func:`site_name` undoes it. A
name made of safe characters only, as almost every model's are, is left as it is; a literal
``_x<hex>_`` in a name has its underscore escaped, so that the mapping is one-to-one.

Only the MLflow keys change: Optuna's records, exports and ``apply_rates`` keep the real names.

Example:
    >>> mlflow_key("drops.head(p)")
    'drops.head_x28_p_x29_'
    >>> site_name(mlflow_key("drops.head(p)"))
    'drops.head(p)'
    >>> mlflow_key("encoder.layers.0.dropout")
    'encoder.layers.0.dropout'
"""

from __future__ import annotations

import re

__all__ = ["mlflow_key", "site_name"]

# An unsafe character, or the underscore that starts a literal escape sequence.
_TO_ESCAPE = re.compile(r"[^A-Za-z0-9_.\-]|_(?=x[0-9a-f]+_)")
_ESCAPED = re.compile(r"_x([0-9a-f]+)_")


def mlflow_key(name: str) -> str:
    """``name`` with every character MLflow could refuse escaped as ``_x<hex>_``."""
    return _TO_ESCAPE.sub(lambda m: f"_x{ord(m.group()):02x}_", name)


def site_name(key: str) -> str:
    """The site name that :func:`mlflow_key` turned into ``key``."""
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), key)
