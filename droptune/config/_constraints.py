"""Declared constraints on a study file's values, checked with one message template.

The idea of scikit-learn's ``_parameter_constraints``: each key path of a study file maps to
what its value may be (type, range, finiteness, choices) in one table
(:data:`droptune.config.PARAMETER_CONSTRAINTS`), and one function checks them all and words
every failure the same way: ``KEY must be EXPECTED; got VALUE. FIX``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from droptune.exceptions import ConfigError

__all__ = ["Interval", "InvalidValue", "Keys", "NonEmpty", "Options", "Pair", "Rule", "check_rules", "message"]


class InvalidValue(ConfigError):
    """A value breaks its declared constraint; ``key`` is the key path (``search.n_trials``)."""

    def __init__(self, key: str, text: str) -> None:
        super().__init__(text)
        self.key = key


def message(key: str, expected: str, value: Any, fix: str = "") -> str:
    """The one message template: what was wrong, what is valid, what was received, the fix.

    Example:
        >>> message("seed", "an integer in [0, 4294967295]", -1)
        'seed must be an integer in [0, 4294967295]; got -1.'
    """
    got = f"{value!r}" if not isinstance(value, float) else _number(value)
    return f"{key} must be {expected}; got {got}." + (f" {fix}" if fix else "")


@dataclass(frozen=True)
class Interval:
    """A finite number (``integer``: a whole one) in a range; ``None`` ends are open-ended."""

    low: float | None = None
    high: float | None = None
    integer: bool = False
    low_open: bool = False

    def ok(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int if self.integer else (int, float)):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or value <= self.high

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a finite number"
        if self.low is not None and self.high is not None:
            return f"{kind} in {'(' if self.low_open else '['}{_number(self.low)}, {_number(self.high)}]"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {_number(self.low)}"
        if self.high is not None:
            return f"{kind} <= {_number(self.high)}"
        return kind


@dataclass(frozen=True)
class Options:
    """One of a closed set of strings (or of those a function returns, read when checked)."""

    values: tuple[str, ...] | Callable[[], tuple[str, ...]]

    def choices(self) -> tuple[str, ...]:
        return self.values() if callable(self.values) else self.values

    def ok(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.choices()

    def describe(self) -> str:
        return f"one of: {', '.join(self.choices())}"


@dataclass(frozen=True)
class NonEmpty:
    """A string with something in it besides blanks."""

    def ok(self, value: Any) -> bool:
        return isinstance(value, str) and bool(value.strip())

    def describe(self) -> str:
        return "a non-empty string"


@dataclass(frozen=True)
class Pair:
    """``[low, high]`` with both in ``inner`` and low <= high."""

    inner: Interval

    def ok(self, value: Any) -> bool:
        return (
            isinstance(value, (tuple, list))
            and len(value) == 2
            and all(self.inner.ok(v) for v in value)
            and value[0] <= value[1]
        )

    def describe(self) -> str:
        return f"[low, high] with low <= high, each {self.inner.describe()}"


@dataclass(frozen=True)
class Keys:
    """For a ``KEY.*`` rule: the mapping's keys must be among ``values``."""

    values: tuple[str, ...]


@dataclass(frozen=True)
class AnyOf:
    """Any one of several constraints (``search.pack``: an integer >= 1 or "auto")."""

    options: tuple[Interval | Options | NonEmpty | Pair, ...]

    def ok(self, value: Any) -> bool:
        return any(option.ok(value) for option in self.options)

    def describe(self) -> str:
        return " or ".join(_one(option) for option in self.options)


def _one(option: Interval | Options | NonEmpty | Pair) -> str:
    """A one-word option by its name ("auto"), not as "one of: auto"."""
    if isinstance(option, Options) and len(option.choices()) == 1:
        return f'"{option.choices()[0]}"'
    return option.describe()


Constraint = Interval | Options | NonEmpty | Pair | AnyOf


@dataclass(frozen=True)
class Rule:
    """One row of the table: where, what, when it applies, and the fix to suggest."""

    constraint: Constraint
    allow_none: bool = False
    keys: Keys | None = None
    when: Callable[[Any], bool] | None = None
    fix: str = ""


def check_rules(root: Any, table: Mapping[str, Rule | tuple[Rule, ...]], *, deferred: bool | None = None) -> None:
    """Check every rule of ``table`` against the dataclass tree ``root``.

    A key path ending in ``.*`` applies to each value of that mapping (and ``Keys`` to
    each of its keys).

    Rules whose choices a function reads (``Options`` of a callable: Lightning's accelerators,
    say) are *deferred*: checked after all the others, since those functions may import the
    heavy stack, and a plain mistake elsewhere in the file is reported without waiting for it.

    Args:
        root: The dataclass tree (a :class:`~droptune.config.StudySpec`).
        table: Key path -> rule(s).
        deferred: Check only the deferred rules (True), only the others (False), or all of
            them, the deferred ones last (None).

    Raises:
        InvalidValue: For the first value that breaks its rule: in table order, the rules
            with fixed choices first.
    """
    rows = [(path, rule) for path, rules in table.items() for rule in (rules if isinstance(rules, tuple) else (rules,))]
    if deferred is not None:
        rows = [row for row in rows if _reads_choices(row[1].constraint) == deferred]
    for path, rule in sorted(rows, key=lambda row: _reads_choices(row[1].constraint)):  # stable: table order kept
        if rule.when is not None and not rule.when(root):
            continue
        for key, value in _values(root, path, rule):
            if value is None and rule.allow_none:
                continue
            if not rule.constraint.ok(value):
                expected = rule.constraint.describe() + (" or null" if rule.allow_none else "")
                raise InvalidValue(key, message(key, expected, value, rule.fix))


def _reads_choices(constraint: Constraint) -> bool:
    """Whether checking ``constraint`` calls a function for its choices (which may import things)."""
    if isinstance(constraint, Options):
        return callable(constraint.values)
    if isinstance(constraint, AnyOf):
        return any(_reads_choices(option) for option in constraint.options)
    return False


def _values(root: Any, path: str, rule: Rule) -> Iterator[tuple[str, Any]]:
    parts: Sequence[str] = path.split(".")
    wildcard = parts[-1] == "*"
    node = root
    for part in parts[:-1] if wildcard else parts:
        node = node.get(part) if isinstance(node, dict) else getattr(node, part)
    if not wildcard:
        yield path, node
        return
    base = path[:-2]
    for name, value in node.items():
        if rule.keys is not None and name not in rule.keys.values:
            raise InvalidValue(f"{base}.{name}", message(f"{base} keys", f"one of: {', '.join(rule.keys.values)}", name))
        yield f"{base}.{name}", value


def _number(value: float) -> str:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)
