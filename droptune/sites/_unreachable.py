"""Dropout calls at a literal rate no attribute or config key feeds: droptune cannot tune them."""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from droptune.sites._rates import is_config_attr
from droptune.sites._trace import TraceResult


@dataclass(frozen=True)
class Unreachable:
    """A dropout call at a literal rate that no attribute feeds: droptune cannot tune it."""

    module_path: str
    kind: str
    function: str
    rate: float
    config_keys: tuple[str, ...] = ()  # config keys this module read at forward time

    def describe(self) -> str:
        where = f"in {self.module_path or '<root>'} ({self.kind})"
        if not self.config_keys:
            return f"{self.function}(rate {self.rate:g}) {where}"
        keys = ", ".join(self.config_keys)
        # The pass runs config keys at tiny probe values: a rate that small was computed from one.
        rate = f"a rate computed from {keys}" if self.rate < _PROBED else f"rate {self.rate:g}"
        return (
            f"{self.function}({rate}) {where}, which reads {keys} at forward time but does not pass it on "
            "as it is (set that key on the model's config object to change the rate: apply_rates accepts "
            "its site name; or hold the rate in an nn.Dropout)"
        )


# Below any real drop probability, above the probe values (1e-6): a rate derived from a probe.
_PROBED = 1.0e-4


def unreachable_calls(model: nn.Module, result: TraceResult | None) -> list[Unreachable]:
    """The traced calls at a nonzero rate that no candidate's probe value reached, once each."""
    if result is None:
        return []
    out = dict.fromkeys(
        Unreachable(
            c.module_path,
            type(model.get_submodule(c.module_path)).__name__,
            c.function,
            c.rate,
            _config_reads(result, c.module_path),
        )
        for c in result.calls
        if c.key is None and not math.isnan(c.rate) and c.rate > 0.0
    )
    return list(out)


def _config_reads(result: TraceResult, module_path: str) -> tuple[str, ...]:
    """The config keys (named as their sites) that ``module_path`` read in the traced pass."""
    return tuple(
        f"{path}.{attr}" if path else attr
        for (path, attr), readers in result.reads.items()
        if is_config_attr(attr) and module_path in readers
    )
