"""Layer types by role: from a traced forward pass when given, structure alone otherwise.

Some kinds settle their type by what they are, wherever they run: LayerDrop is
``layerdrop``, PatchDropout ``patch``, stochastic depth is ``residual``, an RNN's or a VariationalDropout's dropout ``recurrent``, Dropout1d/2d/3d and
DropBlock ``spatial``. Every other dropout is typed by what its call saw in the traced
pass (:mod:`droptune.sites._trace`), in this order:

- ``attention``: its rate reaches ``scaled_dot_product_attention`` or
  ``multi_head_attention_forward``, or it drops a softmax output (attention probabilities);
- ``hidden``: in a model with attention, it drops data attention has seen, inside a
  residual branch, before the add (attention output projection, MLP activations and
  output): BERT's ``hidden_dropout_prob``, GPT-2's ``resid_pdrop``, timm's ``proj_drop``,
  also when the block keeps a conv layout (CoAtNet, MaxViT);
- ``spatial``: it drops conv feature maps still in the conv's layout (a conv output
  permuted back to (B, T, C), as Wav2Vec2 and DeBERTa do, is not);
- ``input``: nothing with parameters ran before it (norm layers aside), or, in a model
  with attention, no attention has touched its input (dropout on embeddings), unless its
  branch is added beside an attention branch (parallel residual: then ``hidden``);
- ``hidden`` too: a token sequence (rank 3 or more) inside a residual branch of a model
  without attention (MLP-Mixer's token and channel MLPs);
- ``dense``: anything else (a classifier head's dropout).

Without a traced call, registration order stands in for execution order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from droptune.nn import VariationalDropout
from droptune.sites._rates import is_layerdrop, is_patch_dropout
from droptune.sites._trace import ATTENTION_FUNCTIONS, TRANSPARENT_KINDS, Call

_SPATIAL_KINDS = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.FeatureAlphaDropout)
_LAYER_KINDS = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
_CONV_KINDS = (nn.modules.conv._ConvNd,)
_ATTENTION_NAMES = {getattr(f, "__name__", "") for f in ATTENTION_FUNCTIONS}
# Names of dropouts on a sub-layer's output inside a user's attention block (structure only).
_OUTPUT_HINTS = {"out", "output", "proj", "resid", "dense"}


@dataclass(frozen=True)
class Verdict:
    """A layer type and the reason for it, in words."""

    layer_type: str
    why: str


def fixed_type(module: nn.Module, attr: str) -> Verdict | None:
    """The type of kinds whose role does not depend on where they run, else None."""
    kind = type(module).__name__
    if is_layerdrop(attr):
        return Verdict("layerdrop", f"LayerDrop ({attr}): skips whole layers at random in training")
    if is_patch_dropout(module):
        return Verdict("patch", f"{kind}: keeps a random subset of the patch tokens in training")
    if attr == "drop_prob" or is_stochastic_depth(module):
        # timm's DropBlock2d also holds a float drop_prob, but drops blocks of feature maps.
        if "DropBlock" in kind:
            return Verdict("spatial", f"{kind} drops blocks of feature maps")
        return Verdict("residual", f"stochastic depth ({kind})")
    if isinstance(module, nn.RNNBase):
        return Verdict("recurrent", f"{kind} dropout between its layers")
    if isinstance(module, VariationalDropout):
        return Verdict("recurrent", "variational dropout: one mask per sequence")
    if isinstance(module, _SPATIAL_KINDS):
        return Verdict("spatial", f"{kind} drops whole channels")
    return None


def traced_type(call: Call, *, in_branch: bool, has_attention: bool, beside_attention: bool = False) -> Verdict:
    """The type of a dropout from the first traced call its rate reached.

    Args:
        call: Its first traced call.
        in_branch: Its output is added to a tensor it is not part of (a residual branch).
        has_attention: The model has attention.
        beside_attention: Its branch, unseen by attention, is added to one attention saw
            (parallel residual: GPT-NeoX's layer-0 MLP).
    """
    if call.function in _ATTENTION_NAMES:
        return Verdict("attention", f"rate passed to {call.function} in {call.module_path or 'the model'}")
    if call.softmax_input:
        return Verdict("attention", "drops a softmax output (attention probabilities)")
    if has_attention and in_branch and call.attended_input:
        return Verdict("hidden", "inside a transformer sub-layer's residual branch, before the add")
    if call.conv_rank is not None and call.input_rank >= 3 and call.conv_layout:
        return Verdict("spatial", "drops conv feature maps (in the conv's channels-first layout)")
    if not call.after_params:
        return Verdict("input", "on the model input (no layer with parameters before it)")
    if has_attention and in_branch and beside_attention:
        return Verdict("hidden", "inside a sub-layer's residual branch added beside attention (parallel residual)")
    if has_attention and not call.attended_input:
        return Verdict("input", "on embeddings (no attention has seen its input yet)")
    if in_branch and call.input_rank >= 3:
        return Verdict("hidden", "on a token sequence inside a sub-layer's residual branch, before the add")
    if in_branch:
        return Verdict("dense", "on dense features inside a residual branch")
    return Verdict("dense", "on dense features outside any residual branch")


def structural_type(model: nn.Module, module_path: str, module: nn.Module, attr: str) -> Verdict:
    """The type from the model's structure alone (no forward pass)."""
    fixed = fixed_type(module, attr)
    if fixed is not None:
        return fixed
    if isinstance(module, nn.MultiheadAttention):
        return Verdict("attention", "nn.MultiheadAttention's attention-weight dropout")
    holder = _attention_holder(model, module_path)
    if holder is not None:
        words = set(re.split(r"[._]", module_path.lower()))
        if isinstance(holder, _LAYER_KINDS) or words & _OUTPUT_HINTS:
            return Verdict("hidden", f"structure: inside {type(holder).__name__}, not on attention weights")
        return Verdict("attention", f"structure: inside {type(holder).__name__}")
    parent = model.get_submodule(module_path.rpartition(".")[0]) if module_path else model
    if "Embedding" in type(parent).__name__:
        return Verdict("input", f"structure: inside {type(parent).__name__}")
    block = _block_after_attention(model, module_path)
    if block is not None:
        return Verdict("hidden", f"structure: in {type(block).__name__}, after its attention")
    return _position_type(model, module_path)


def is_stochastic_depth(module: nn.Module) -> bool:
    """torchvision's ``StochasticDepth`` (rate in ``p``), recognised by name: no import."""
    return type(module).__name__ == "StochasticDepth"


def _attention_holder(model: nn.Module, module_path: str) -> nn.Module | None:
    """The innermost attention block or Transformer layer holding ``module_path``, if any."""
    parts = module_path.split(".") if module_path else []
    found = None
    for depth in range(len(parts)):
        holder = model.get_submodule(".".join(parts[:depth]))
        if isinstance(holder, _LAYER_KINDS) or "Attention" in type(holder).__name__:
            found = holder
    return found


def _block_after_attention(model: nn.Module, module_path: str) -> nn.Module | None:
    """The innermost block (not the root) holding one or two attention modules registered before ``module_path``.

    A transformer block registers its attention before its MLP; a stack of many layers,
    or the whole model, is not a block.
    """
    parts = module_path.split(".") if module_path else []
    for depth in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:depth])
        block = model.get_submodule(prefix)
        names = [p for p, m in block.named_modules() if isinstance(m, nn.MultiheadAttention)
                 or "Attention" in type(m).__name__]
        if not names:
            continue
        tops = {n for n in names if not any(n.startswith(o + ".") for o in names if o != n)}
        if len(tops) > 2:
            return None
        order = [p for p, _ in block.named_modules()]
        rest = module_path[len(prefix) + 1 :]
        return block if rest in order and min(order.index(n) for n in tops) < order.index(rest) else None
    return None


def _position_type(model: nn.Module, module_path: str) -> Verdict:
    """input / spatial / dense from the leaf modules registered before ``module_path``.

    Registration order stands in for execution order: the last conv makes it spatial
    until a Flatten or a feature-mixing layer; no such layer at all makes it input.
    """
    seen: str | None = None
    for path, module in model.named_modules():
        if path == module_path:
            break
        if next(module.children(), None) is not None:
            continue  # containers: their own parameters say nothing about order
        if isinstance(module, _CONV_KINDS):
            seen = "spatial"
        elif isinstance(module, nn.Flatten):
            seen = "dense" if seen == "spatial" else seen
        elif (
            not isinstance(module, TRANSPARENT_KINDS)
            and next(module.parameters(recurse=False), None) is not None
        ):
            seen = "dense"
    why = {
        "spatial": "structure: registered after a conv",
        "dense": "structure: registered after a layer with parameters",
        None: "structure: nothing with parameters registered before it",
    }[seen]
    return Verdict(seen or "input", why)
