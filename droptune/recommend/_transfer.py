"""How far a study's per-type rates carry to another model: the evidence is one model size.

Issue 20 applied the per-type rates of a study on a small MLP, by type, to a model 4x wider
and 2x deeper: it did worse than tuning that model directly (the bigger model wanted dense
about 0.6, the small one about 0.2). Dropout wants more of it as capacity grows relative to
the data, so a rate tuned at one size is evidence for models of about that size on similar
data, and no more. A study records its model's size (:data:`droptune.record.MODEL_SIZE_ATTR`);
:func:`transfer_note` says what that supports, for the report and ``recommend --for-model``.
"""

from __future__ import annotations

from collections.abc import Sequence

import optuna

from droptune.record import MODEL_SIZE_ATTR

# Within this factor of the studied model's parameter count, the rates are evidence.
SIZE_FACTOR = 2.0


def studied_params(study: optuna.Study) -> int | None:
    """The parameter count of the model ``study`` tuned, if it recorded one."""
    size = study.user_attrs.get(MODEL_SIZE_ATTR)
    n = size.get("n_params") if isinstance(size, dict) else None
    return int(n) if isinstance(n, int) and n > 0 else None


def transfer_note(studies: Sequence[optuna.Study], target_params: int | None = None) -> str:
    """Whether the rates of ``studies`` carry to a model of ``target_params`` parameters, and why.

    Returns:
        ``Supported: ...`` when the target is within :data:`SIZE_FACTOR` of every studied
        model's size, ``Unsupported by the evidence: ...`` when it is not; with no target (or no
        recorded size), what the evidence covers.

    Example:
        >>> study = optuna.create_study()
        >>> study.set_user_attr(MODEL_SIZE_ATTR, {"n_params": 100_000})
        >>> transfer_note([study], 450_000).split(":")[0]
        'Unsupported by the evidence'
        >>> transfer_note([study], 150_000).split(":")[0]
        'Supported'
    """
    sizes = [n for n in map(studied_params, studies) if n is not None]
    if not sizes:
        return ("The studies do not record their model's size: the per-type rates are evidence for the "
                      "model they tuned; for another model, tune it directly.")
    measured = f"{min(sizes):,}" if len(set(sizes)) == 1 else f"{min(sizes):,}–{max(sizes):,}"
    scope = (f"The per-type rates were measured on a model of {measured} parameters; they are evidence for models "
             f"within {SIZE_FACTOR:g}x of that size on similar data. Bigger models (relative to their data) tend to "
             "want more dropout: a 4x wider, 2x deeper MLP wanted dense about 0.6 where the small one wanted 0.2.")
    if target_params is None:
        return scope
    ratio = target_params / (sum(sizes) / len(sizes))
    if all(1 / SIZE_FACTOR <= target_params / n <= SIZE_FACTOR for n in sizes):
        return f"Supported: the target model has {target_params:,} parameters ({ratio:.2g}x). {scope}"
    return (f"Unsupported by the evidence: the target model has {target_params:,} parameters ({ratio:.2g}x the "
                   f"studied one). {scope} Tune the target model directly (its own study), starting from these rates.")
