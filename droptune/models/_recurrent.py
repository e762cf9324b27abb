"""An LSTM classifier with variational (locked) dropout on its inputs and outputs."""

from __future__ import annotations

import torch
from torch import nn
from typing_extensions import override

from droptune.models._base import ClassifierModule
from droptune.nn import VariationalDropout


class RecurrentClassifier(ClassifierModule):
    """A stacked LSTM over ``(B, T, F)`` sequences; the last step's output is classified.

    Dropout sites, all recurrent: :class:`~droptune.nn.VariationalDropout` on the input
    sequence (one mask per sequence, shared across time), the LSTM's own ``dropout``
    between its layers, and VariationalDropout on the LSTM outputs. Fits digits
    ``view="sequence"`` ``(B, 8, 8)``: 8 image rows as 8 time steps.

    Args:
        input_size: Features per time step (default 8).
        hidden_size: LSTM hidden units (default 64).
        num_layers: Stacked LSTM layers (default 2; the LSTM's dropout needs >= 2).
        num_classes: Output logits (default 10).
        input_dropout: Drop probability on the input features, in [0, 1) (default 0.1).
        rnn_dropout: Drop probability between LSTM layers, in [0, 1) (default 0.25).
        output_dropout: Drop probability on the LSTM outputs, in [0, 1) (default 0.25).
        lr: AdamW learning rate (default 3e-3).
        weight_decay: AdamW weight decay (default 0).
    """

    def __init__(
        self,
        *,
        input_size: int = 8,
        hidden_size: int = 64,
        num_layers: int = 2,
        num_classes: int = 10,
        input_dropout: float = 0.1,
        rnn_dropout: float = 0.25,
        output_dropout: float = 0.25,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.input_dropout = VariationalDropout(input_dropout)
        self.rnn = nn.LSTM(
            input_size, hidden_size, num_layers=num_layers, dropout=rnn_dropout, batch_first=True
        )
        self.output_dropout = VariationalDropout(output_dropout)
        self.head = nn.Linear(hidden_size, num_classes)

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.rnn(self.input_dropout(x))
        return self.head(self.output_dropout(outputs)[:, -1])
