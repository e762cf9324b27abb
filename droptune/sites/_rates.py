"""Where rates live besides dropout modules: LayerDrop attributes and model config objects.

timm's PatchDropout (``prob``, from ``patch_drop_rate``) keeps a random ``1 - prob`` of the
patch tokens (``randn`` + ``argsort``): known by its class name, like StochasticDepth.

LayerDrop (Fan et al. 2019) skips a whole layer when ``torch.rand([]) < p``: no dropout
call carries its rate, so it is known by its conventional name (``layerdrop``,
``encoder_layerdrop``, ``layer_drop``...), held by a module (OPT, Whisper, BART) or read
from the model's config at forward time (Wav2Vec2 and HuBERT read ``config.layerdrop``).

A transformers model keeps its config object as ``module.config`` on many modules, and
some read rates from it at forward time (Falcon hands ``config.hidden_dropout`` to
``dropout_add``). Such a rate is named after the shallowest module holding that config
object: ``config.hidden_dropout`` at the root, ``model.config.hidden_dropout`` in a
wrapper holding the model as ``self.model``. Setting it sets the one shared object.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from torch import nn

Key = tuple[str, str]  # (module path, attribute) holding a rate; the attribute may be "config.<key>"
CONFIG = "config"
_LAYERDROP = re.compile(r"^(encoder_|decoder_)?layer_?drop(_rate|_prob|_p)?$")


def is_layerdrop(attr: str) -> bool:
    """Whether ``attr`` (or its last part: ``config.layerdrop``) is named as a LayerDrop rate."""
    return bool(_LAYERDROP.match(attr.rpartition(".")[2]))


def is_patch_dropout(module: nn.Module) -> bool:
    """timm's ``PatchDropout`` (rate in ``prob``), recognised by name: no import."""
    return "PatchDropout" in type(module).__name__


def held_at_zero(module: nn.Module, attr: str) -> bool:
    """Rates the traced pass holds at exactly 0: they skip layers or drop tokens, changing
    what runs or the shapes (even at a tiny probe, PatchDropout keeps one token fewer)."""
    return is_layerdrop(attr) or (attr == "prob" and is_patch_dropout(module))


def is_config_attr(attr: str) -> bool:
    """Whether ``attr`` names a key of the module's config object (``config.hidden_dropout``)."""
    return attr.startswith(CONFIG + ".")


def get_rate(module: nn.Module, attr: str) -> Any:
    """The value of ``attr`` on ``module``, following one dot (``config.hidden_dropout``)."""
    holder, name = _holder(module, attr)
    return getattr(holder, name)


def set_rate(module: nn.Module, attr: str, value: float) -> None:
    """Set ``attr`` of ``module`` to ``value``, following one dot (``config.hidden_dropout``)."""
    holder, name = _holder(module, attr)
    setattr(holder, name, value)


def _holder(module: nn.Module, attr: str) -> tuple[Any, str]:
    head, _, name = attr.rpartition(".")
    return (getattr(module, head) if head else module), name


def config_of(module: nn.Module) -> Any:
    """The module's config object (``module.config``, not a module nor a tensor), or None."""
    config = vars(module).get(CONFIG)
    if config is None or isinstance(config, nn.Module) or not hasattr(config, "__dict__"):
        return None
    return config


def config_candidates(model: nn.Module) -> dict[Key, float]:
    """Rate-like config keys: float values in [0, 1) whose name says drop, once per config object.

    Only keys named as rates (``*drop*``) are candidates: other floats of a config
    (``initializer_range``, ``partial_rotary_factor``) may be read at forward time for
    other ends, and the traced pass must not change them.
    """
    out: dict[Key, float] = {}
    seen: set[int] = set()
    for path, module in model.named_modules():
        config = config_of(module)
        if config is None or id(config) in seen:
            continue
        seen.add(id(config))
        for key, value in vars(config).items():
            if "drop" in key and not key.startswith("_") and type(value) is float and 0.0 <= value < 1.0:
                if _settable(config, key, value):
                    out[(path, f"{CONFIG}.{key}")] = value
    return out


def _settable(config: Any, key: str, value: float) -> bool:
    """Whether ``config.key`` can be set (a frozen dataclass refuses): setting its own value changes nothing."""
    try:
        setattr(config, key, value)
    except Exception:  # FrozenInstanceError, a read-only property, a validating setter...
        return False
    return True


def layerdrop_attrs(module: nn.Module) -> list[str]:
    """The module's own float attributes named as LayerDrop rates."""
    return [
        attr
        for attr, value in vars(module).items()
        if is_layerdrop(attr) and isinstance(value, (int, float)) and not isinstance(value, bool)
    ]


class Watched(float):
    """A float that reports each use (comparison, truth test, arithmetic) to ``hook(key)``.

    The traced pass puts one in place of a LayerDrop rate or a config key, so that reading
    it at forward time is seen even when no dropout call follows (``if self.layerdrop > 0``).
    """

    key: Key
    hook: Callable[[Key], None] | None

    def __new__(cls, value: float, key: Key = ("", ""), hook: Callable[[Key], None] | None = None) -> Watched:
        self = super().__new__(cls, value)
        self.key = key
        self.hook = hook
        return self

    def __reduce__(self) -> tuple[type[float], tuple[float]]:
        return float, (float.__float__(self),)  # a copy (deepcopy of a config) is a plain float, unwatched

    def seen(self) -> None:
        """Report a use of this value."""
        if self.hook is not None:
            self.hook(self.key)


_USES = (
    "__bool__", "__float__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__",
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
)


def _reporting(name: str) -> Callable[..., Any]:
    base = getattr(float, name)

    def use(self: Watched, *args: Any) -> Any:
        self.seen()
        return base(self, *args)

    use.__name__ = name
    return use


for _name in _USES:  # set after the class is made: overriding __eq__ there would drop __hash__
    setattr(Watched, _name, _reporting(_name))
