"""Study-file structure: a parsed YAML mapping built into nested frozen dataclasses.

Unknown keys, missing required keys and values of the wrong type are refused here, by the
dataclasses' own type hints; the values themselves (ranges, choices) are checked afterwards
against :data:`droptune.config.PARAMETER_CONSTRAINTS`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin

from droptune.config._constraints import InvalidValue, message
from droptune.exceptions import ConfigError

__all__ = ["build_dataclass"]


def build_dataclass(cls: type, data: Any, key: str, *, shorthands: Mapping[type, str] | None = None) -> Any:
    """Build dataclass ``cls`` from ``data``, checking keys and types against its fields.

    Args:
        cls: The dataclass.
        data: A mapping (parsed YAML).
        key: The key path of ``data`` ("" for the root), for messages.
        shorthands: Dataclasses that may be given as a plain string, and the field it fills
            (``{ClassSpec: "class_path"}``).

    Raises:
        ConfigError: For an unknown or missing key, or a value of the wrong type.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{key or 'the study'} must be a mapping; got {type(data).__name__}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = [k for k in data if k not in fields]
    if unknown:
        where = f"{key}." if key else ""
        raise ConfigError(f"unknown key {where}{unknown[0]}; valid keys: {', '.join(fields)}.")
    values = {}
    for name, f in fields.items():
        sub = f"{key}.{name}" if key else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"missing required key {sub}.")
            continue
        values[name] = _convert(hints[name], data[name], sub, shorthands or {})
    return cls(**values)


def _convert(hint: Any, value: Any, key: str, short: Mapping[type, str]) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if dataclasses.is_dataclass(hint):
        cls = typing.cast(type, hint)
        if cls in short and isinstance(value, str):
            value = {short[cls]: value}
        return build_dataclass(cls, value, key, shorthands=short)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) > 1:  # e.g. int | Literal["auto"]: checked by droptune.config.PARAMETER_CONSTRAINTS
            return value
        return _convert(inner[0], value, key, short)
    if origin is Literal:  # the choices are checked by droptune.config.PARAMETER_CONSTRAINTS
        return value
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(message(key, "a mapping", value))
        return {str(k): _convert(args[1], v, f"{key}.{k}", short) for k, v in value.items()}
    if origin is tuple:
        if isinstance(value, str) and args[-1] is Ellipsis:
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(message(key, "a list", value))
        if args[-1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{key}[{i}]", short) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(message(key, f"a list of {len(args)} values [low, high]", list(value)))
        return tuple(_convert(a, v, f"{key}[{i}]", short) for i, (a, v) in enumerate(zip(args, value)))
    return _scalar(hint, value, key)


def _scalar(hint: Any, value: Any, key: str) -> Any:
    if hint is Any:
        return value
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    expected = {float: "a number", int: "an integer", str: "a string", bool: "true or false"}.get(hint, str(hint))
    raise InvalidValue(key, message(key, expected, value))
