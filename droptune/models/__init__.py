"""Built-in LightningModules, one per dropout family, each small enough for a CPU.

=====================  ==============================  ============================
model                  data                            dropout sites (layer types)
=====================  ==============================  ============================
MLP                    MNIST-1D, digits ``flat``       input, dense
Mnist1dCNN             MNIST-1D                        spatial, dense
DigitsCNN              digits ``image``                spatial, dense
RecurrentClassifier    digits ``sequence``             recurrent
PatchTransformer       digits ``patches``              attention, hidden, residual
=====================  ==============================  ============================
"""

from __future__ import annotations

from droptune.models._base import ClassifierModule
from droptune.models._cnn import DigitsCNN, Mnist1dCNN
from droptune.models._mlp import MLP
from droptune.models._recurrent import RecurrentClassifier
from droptune.models._transformer import Block, PatchTransformer

__all__ = [
    "MLP",
    "Block",
    "ClassifierModule",
    "DigitsCNN",
    "Mnist1dCNN",
    "PatchTransformer",
    "RecurrentClassifier",
]
