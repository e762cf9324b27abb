"""Textbook dropout rates and search ranges per layer type (DESIGN.md's table)."""

from __future__ import annotations

# Typical rate per layer type: where the literature starts, and droptune's first trial.
PRIORS: dict[str, float] = {
    "input": 0.1,
    "dense": 0.5,
    "spatial": 0.25,
    "recurrent": 0.25,
    "attention": 0.1,
    # Dropout inside a transformer sub-layer's residual branch (BERT hidden_dropout_prob,
    # GPT-2 resid_pdrop): the notes' 0.1 for Transformers, not the dense layers' 0.5.
    "hidden": 0.1,
    "residual": 0.1,
    # LayerDrop (Fan et al. 2019): 0.1-0.2 in fairseq and wav2vec 2.0 (0.05-0.1 fine-tuning).
    "layerdrop": 0.1,
    # PatchDropout (Liu et al. 2023) drops 25-50% of the patch tokens at little cost; timm's patch_drop_rate.
    "patch": 0.25,
}

# Search range per layer type, [low, high] drop probabilities.
RANGES: dict[str, tuple[float, float]] = {
    "input": (0.0, 0.3),
    "dense": (0.0, 0.7),
    "spatial": (0.0, 0.5),
    "recurrent": (0.0, 0.5),
    "attention": (0.0, 0.3),
    "hidden": (0.0, 0.3),
    "residual": (0.0, 0.3),
    "layerdrop": (0.0, 0.3),
    "patch": (0.0, 0.5),
}
