"""One traced training-mode forward pass: which dropout runs, at which rate, fed by what.

Every float attribute in [0, 1) of every module is first set to its own tiny probe value
(``PROBE_BASE + i * PROBE_STEP``); the forward pass then runs in training mode, without
gradients, under a :class:`~torch.overrides.TorchFunctionMode` that sees every call of
functional dropout (``F.dropout*``, ``F.scaled_dot_product_attention(dropout_p=)``,
``F.multi_head_attention_forward``). A call whose rate equals a probe value is fed by
that attribute: the value was changed and the call's rate changed with it, which proves
the tie even for attributes that were 0.0. A call at any other rate is a literal rate that
no attribute feeds. Probe values are tiny so that code gated on a rate (``if
self.drop_rate:``) takes its dropout branch while the numbers barely move. Rate-named keys
of the model's config objects (``config.hidden_dropout``) are probed the same way, and
report when they are read. LayerDrop and PatchDropout rates are held at exactly 0 (reads
reported), so that no layer is skipped, no token dropped, and the pass is the same under
every RNG state. Attributes, config
keys, train/eval modes, buffers (BatchNorm running statistics) and the RNG state are
restored afterwards.

The same pass follows the data: each dropout's output tensor is marked, marks flow
through every op, and an add of two same-shape tensors whose marks differ is a residual
add whose branch holds the dropouts in the difference. Softmax outputs are flagged, so a
dropout on them is on attention probabilities; outputs of attention are flagged
"attended", so a dropout on data no attention has seen is on embeddings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from droptune.exceptions import ConfigError
from droptune.sites._probe import call_model, fork_rng, probe_values, rate_candidates, restore, set_probes
from droptune.sites._rates import Key, Watched

ATTENDED: Key = ("", "<attended>")  # a mark: this tensor went through attention
_MARKS = "_droptune_marks"
_SOFTMAX = "_droptune_softmax"
_CONV = "_droptune_conv"  # a conv's output, still in its (B, C, ...) layout

# function -> (rate keyword, rate position, training keyword or None, its position)
RATE_FUNCTIONS: dict[Callable[..., Any], tuple[str, int, str | None, int]] = {
    F.dropout: ("p", 1, "training", 2),
    F.dropout1d: ("p", 1, "training", 2),
    F.dropout2d: ("p", 1, "training", 2),
    F.dropout3d: ("p", 1, "training", 2),
    F.alpha_dropout: ("p", 1, "training", 2),
    F.feature_alpha_dropout: ("p", 1, "training", 2),
    torch.dropout: ("p", 1, "train", 2),
    F.scaled_dot_product_attention: ("dropout_p", 4, None, -1),
    F.multi_head_attention_forward: ("dropout_p", 10, "training", 13),
}
ATTENTION_FUNCTIONS = (F.scaled_dot_product_attention, F.multi_head_attention_forward)
_SOFTMAX_FUNCTIONS = {F.softmax, torch.softmax, torch.Tensor.softmax, torch._softmax}
_ADD_FUNCTIONS = {
    torch.add,
    torch.Tensor.add,
    torch.Tensor.add_,
    torch.Tensor.__add__,
    torch.Tensor.__radd__,
    torch.Tensor.__iadd__,
}
_CONV_KINDS = (nn.modules.conv._ConvNd,)
# Ops after which a conv output is no longer in its channels-first layout.
_RELAYOUT = {
    torch.permute, torch.Tensor.permute, torch.transpose, torch.Tensor.transpose, torch.Tensor.transpose_,
    torch.swapaxes, torch.Tensor.swapaxes, torch.movedim, torch.Tensor.movedim, torch.t, torch.Tensor.t,
    torch.reshape, torch.Tensor.reshape, torch.Tensor.view, torch.flatten, torch.Tensor.flatten,
    torch.Tensor.unflatten, torch.Tensor.reshape_as, torch.Tensor.view_as,
}
# Modules with parameters that rescale features without mixing them.
TRANSPARENT_KINDS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.PReLU,
) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())


@dataclass
class Call:
    """One functional dropout call seen in the traced pass."""

    function: str
    module_path: str  # the innermost module running when it was called
    rate: float
    key: Key | None  # the attribute whose probe value it received; None: a literal rate
    input_rank: int
    after_params: bool  # a feature-mixing module with parameters ran before it
    conv_rank: int | None  # output rank of that module if it was a conv
    softmax_input: bool  # its input is a softmax output: attention probabilities
    attended_input: bool  # its input went through attention
    conv_layout: bool = False  # its input is a conv output still in the conv's layout (not permuted)
    next_module: str | None = None  # class of the next module with parameters to run
    added_first: bool = False  # its output met a residual add before the next module with parameters


@dataclass
class TraceResult:
    """What one traced pass saw."""

    ran: set[str] = field(default_factory=set)  # paths of modules whose forward ran
    calls: list[Call] = field(default_factory=list)
    branch: set[Key] = field(default_factory=set)  # keys seen inside a residual branch
    beside_attention: set[Key] = field(default_factory=set)  # in a branch no attention saw, added to one it did
    has_attention: bool = False
    probed: dict[Key, float] = field(default_factory=dict)  # key -> original value
    reads: dict[Key, set[str]] = field(default_factory=dict)  # watched key -> paths of modules that read it


def call_rate(func: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[float, bool]:
    """The rate a functional dropout call got, and whether it was in training mode."""
    rate_kw, rate_pos, train_kw, train_pos = RATE_FUNCTIONS[func]
    default = 0.0 if func in ATTENTION_FUNCTIONS else 0.5
    rate = kwargs.get(rate_kw, args[rate_pos] if len(args) > rate_pos else default)
    training = True
    if train_kw is not None:
        training = bool(kwargs.get(train_kw, args[train_pos] if len(args) > train_pos else True))
    return float(rate) if isinstance(rate, (int, float)) else float("nan"), training


class _Tracer(TorchFunctionMode):
    def __init__(self, probes: Mapping[float, Key], *, train: bool = True) -> None:
        super().__init__()
        self.probes = probes
        self.train = train
        self.result = TraceResult()
        self.stack: list[str] = [""]
        self.after_params = False
        self.conv_rank: int | None = None
        self.pending: list[Call] = []
        self.attention_depth = 0  # how many attention modules are running now

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        flat = tree_flatten((args, kwargs))[0]
        for value in flat:
            if isinstance(value, Watched):  # torch.rand([]) < self.layerdrop
                value.seen()
        inputs = [t for t in flat if isinstance(t, torch.Tensor)]
        marks: frozenset[Key] = frozenset().union(*(getattr(t, _MARKS, frozenset()) for t in inputs))
        if func in _ADD_FUNCTIONS and len(inputs) >= 2 and inputs[0].shape == inputs[1].shape:
            self._residual_add(getattr(inputs[0], _MARKS, frozenset()), getattr(inputs[1], _MARKS, frozenset()))
        if func in RATE_FUNCTIONS:
            marks = marks | self._record(func, args, kwargs, inputs)
        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        softmax = func in _SOFTMAX_FUNCTIONS or (
            len(inputs) == 1 and getattr(inputs[0], _SOFTMAX, False) and len(outputs) == 1
            and outputs[0].shape == inputs[0].shape
        )
        if func in _SOFTMAX_FUNCTIONS and self.attention_depth:
            marks = marks | {ATTENDED}  # eager attention: probabilities of an attention block
        conv = func not in _RELAYOUT and {t.dim() for t in inputs if getattr(t, _CONV, False)}
        for t in outputs:
            if marks:
                _set(t, _MARKS, getattr(t, _MARKS, frozenset()) | marks)
            if softmax:
                _set(t, _SOFTMAX, True)
            if conv and t.dim() in conv:
                _set(t, _CONV, True)
        return out

    def _residual_add(self, a: frozenset[Key], b: frozenset[Key]) -> None:
        """An add of two same-shape tensors: the dropouts on one side only are in a branch.

        Parallel residual (GPT-NeoX, Phi): ``mlp(x) + attn(x) + x``; layer 0's MLP branch
        has seen no attention, but it is a sub-layer's output all the same.
        """
        differ = (a ^ b) - {ATTENDED}
        self.result.branch |= differ
        if (ATTENDED in a) != (ATTENDED in b):
            self.result.beside_attention |= (b - a) if ATTENDED in a else (a - b)
        for call in self.pending:
            call.added_first = call.added_first or call.key in differ

    def _record(self, func: Any, args: tuple, kwargs: Any, inputs: list[torch.Tensor]) -> frozenset[Key]:
        rate, training = call_rate(func, args, kwargs)
        attention = func in ATTENTION_FUNCTIONS
        if attention:
            self.result.has_attention = True
        if not training and self.train:
            return frozenset({ATTENDED}) if attention else frozenset()
        first = inputs[0] if inputs else None
        call = Call(
            function=getattr(func, "__name__", str(func)),
            module_path=self.stack[-1],
            rate=rate,
            key=self.probes.get(rate),
            input_rank=first.dim() if first is not None else 0,
            after_params=self.after_params,
            conv_rank=self.conv_rank,
            softmax_input=bool(first is not None and getattr(first, _SOFTMAX, False)),
            attended_input=bool(first is not None and ATTENDED in getattr(first, _MARKS, ())),
            conv_layout=bool(first is not None and getattr(first, _CONV, False)),
        )
        self.result.calls.append(call)
        self.pending.append(call)
        keys = {call.key} if call.key is not None else set()
        return frozenset(keys | ({ATTENDED} if attention else set()))

    def read(self, key: Key) -> None:
        """A watched rate was used while the innermost running module was the top of the stack."""
        self.result.reads.setdefault(key, set()).add(self.stack[-1])

    def enter(self, path: str, module: nn.Module) -> None:
        self.stack.append(path)
        self.result.ran.add(path)
        if _is_attention(module):
            self.result.has_attention = True
            self.attention_depth += 1
        if _own_params(module):
            for call in self.pending:
                call.next_module = type(module).__name__
            self.pending.clear()

    def leave(self, module: nn.Module, output: Any) -> None:
        self.stack.pop()
        outputs = [t for t in tree_flatten(output)[0] if isinstance(t, torch.Tensor)]
        if _is_attention(module):
            self.attention_depth -= 1
            for t in outputs:
                _set(t, _MARKS, getattr(t, _MARKS, frozenset()) | {ATTENDED})
        if isinstance(module, TRANSPARENT_KINDS) or not _own_params(module):
            return
        self.after_params = True
        is_conv = isinstance(module, _CONV_KINDS) and len(outputs) == 1
        self.conv_rank = outputs[0].dim() if is_conv else None
        if is_conv:
            _set(outputs[0], _CONV, True)


def trace(model: nn.Module, example_input: Any, *, probe: bool = True, train: bool = True) -> TraceResult:
    """Run the probed, traced training-mode pass of ``model`` on ``example_input``.

    Args:
        model: The model (left as it was).
        example_input: One input for ``model(...)``.
        probe: Give every candidate attribute its own probe value (the proof of a tie).
            Without probing, a call is tied to the one attribute holding its exact rate,
            when exactly one nonzero attribute does: the fallback for a model whose
            forward pass fails at probe values.
        train: Run in training mode (HF attention passes its rate only then). In eval
            mode, calls are recorded whatever their ``training`` flag: the fallback for a
            model that cannot run in training mode on the example (BatchNorm on one row).

    Raises:
        ConfigError: If the forward pass on ``example_input`` fails.
    """
    candidates = rate_candidates(model)
    probes = probe_values(model, candidates, probe=probe)
    tracer = _Tracer(probes, train=train)
    handles = _hook(model, tracer)
    modes = {module: module.training for module in model.modules()}
    saved = {name: b.detach().clone() for name, b in model.named_buffers()}
    try:
        set_probes(model, candidates, probes if probe else {}, tracer.read)
        model.train(train)
        with torch.no_grad(), fork_rng(), tracer:
            call_model(model, example_input)
    except Exception as err:
        raise ConfigError(
            f"discover: the forward pass on example_input failed ({type(err).__name__}: {err}). "
            "Pass one batch the model accepts (a tensor, a tuple of positional arguments or a "
            "dict of keyword arguments), or no example_input."
        ) from err
    finally:
        for handle in handles:
            handle.remove()
        restore(model, candidates, modes, saved)
        _unmark(model)
    tracer.result.probed = candidates
    return tracer.result


def _hook(model: nn.Module, tracer: _Tracer) -> list[Any]:
    """Hooks on every module that keep the tracer's stack of running modules."""
    handles = []
    for path, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(lambda m, _a, path=path: tracer.enter(path, m)))
        handles.append(module.register_forward_hook(lambda m, _a, out: tracer.leave(m, out), always_call=True))
    return handles


def _unmark(model: nn.Module) -> None:
    """Take the tracer's marks off parameters and buffers (an op may return its input)."""
    for tensor in [*model.parameters(), *model.buffers()]:
        for name in (_MARKS, _SOFTMAX, _CONV):
            if name in vars(tensor):
                delattr(tensor, name)


def _is_attention(module: nn.Module) -> bool:
    return isinstance(module, nn.MultiheadAttention) or "Attention" in type(module).__name__


def _own_params(module: nn.Module) -> bool:
    return next(module.parameters(recurse=False), None) is not None


def _set(tensor: torch.Tensor, name: str, value: Any) -> None:
    try:
        setattr(tensor, name, value)
    except (AttributeError, RuntimeError):  # a tensor kind without a __dict__: lose the mark
        pass
