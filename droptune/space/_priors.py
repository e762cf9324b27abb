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

# Search range per layer type, [low, high] drop probabilities. Wider than the textbook's
# "typical" spans on purpose (issue 20): on small or noisy data the best input rates were
# 0.31-0.49 and a 4x wider model wanted dense ~0.6, outside the old 0.3 / 0.7 tops, where a
# search can never go. Every type starts at 0 (no dropout must stay reachable); a study
# whose best trials still sit at a top gets a caveat naming the key to widen
# (droptune.recommend._confidence).
RANGES: dict[str, tuple[float, float]] = {
    "input": (0.0, 0.6),
    "dense": (0.0, 0.8),
    "spatial": (0.0, 0.6),
    "recurrent": (0.0, 0.6),
    "attention": (0.0, 0.4),
    "hidden": (0.0, 0.4),
    "residual": (0.0, 0.4),
    "layerdrop": (0.0, 0.3),  # the literature's span (issue 25): whole layers skipped
    "patch": (0.0, 0.5),
}
