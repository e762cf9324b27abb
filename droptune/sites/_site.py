"""DropoutSite: one place in a model where a drop probability lives."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from droptune._layer_types import LAYER_TYPES as LAYER_TYPES  # re-exported: sites.LAYER_TYPES
from droptune._layer_types import LayerType


@dataclass(frozen=True)
class DropoutSite:
    """One tunable drop probability, as found by :func:`droptune.discover`.

    Attributes:
        name: Unique name. A dropout module is named by its module path (``head.2``);
            a rate held as an attribute of another module by path + "." + attribute
            (``rnn.dropout``, ``blocks.1.drop_path.drop_prob``).
        module_path: Path of the module that holds the rate ("" for the root).
        attr: Attribute of that module holding the rate (``p``, ``dropout``, ``drop_prob``).
        kind: Class name of the holding module (``Dropout2d``, ``LSTM``, ``DropPath``...).
        layer_type: One of :data:`LAYER_TYPES`.
        rate: Drop probability in [0, 1) when the site was discovered.
        live: Whether the site's dropout runs: False when a traced forward pass on an
            example input never ran its module nor handed its rate to any dropout
            (an EfficientNet block without a skip connection keeps an unused DropPath).
            Inactive sites are listed but not tuned. True when nothing was traced.
        why: Why the site has its layer type, in words.
        functional: Whether code outside the site's own dropout module reads the rate
            and passes it to functional dropout or attention (a float attribute, or
            ``self.dropout.p`` handed to ``scaled_dot_product_attention``).
    """

    name: str
    module_path: str
    attr: str
    kind: str
    layer_type: LayerType
    rate: float
    live: bool = True
    why: str = ""
    functional: bool = False

    def module(self, model: nn.Module) -> nn.Module:
        """Return the module of ``model`` that holds this site's rate."""
        return model.get_submodule(self.module_path)
