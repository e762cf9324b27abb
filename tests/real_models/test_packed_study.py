"""`droptune tune --pack 4` end to end on a wrapped transformers BERT and a wrapped timm-style ViT.

The study files name classes in a module written next to them, as a user's project would.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from droptune.cli import main
from droptune.record import TRIAL_TAG

pytest.importorskip("transformers")

MODELS = """
import lightning.pytorch as pl
import torch
import torch.nn.functional as F
import transformers

from timm_like import VisionTransformer


class Wrapped(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.loss_fn = F.cross_entropy

    def validation_step(self, batch, _):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def training_step(self, batch, _):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


class Bert(Wrapped):
    def __init__(self) -> None:
        super().__init__()
        config = transformers.BertConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=32, vocab_size=100, num_labels=3)
        self.net = transformers.BertForSequenceClassification(config)

    def forward(self, x):
        return self.net(input_ids=(x.abs() * 50).long().clamp(0, 99)).logits


class Vit(Wrapped):
    def __init__(self) -> None:
        super().__init__()
        self.net = VisionTransformer(depth=2, num_classes=3)

    def forward(self, x):
        return self.net(x[:, :48].reshape(-1, 3, 4, 4).repeat_interleave(2, -1).repeat_interleave(2, -2))
"""


@pytest.mark.parametrize(("model", "features"), [("Bert", 8), ("Vit", 48)])
def test_a_packed_study_on_a_wrapped_real_model_runs_to_the_end(
    in_tmp: Path, model: str, features: int
) -> None:
    shutil.copy(Path(__file__).with_name("_timm_like.py"), in_tmp / "timm_like.py")
    (in_tmp / "user_models.py").write_text(MODELS)
    study = in_tmp / "study.yaml"
    study.write_text(
        textwrap.dedent(
            f"""
            name: packed-{model.lower()}
            model: {{class_path: user_models.{model}}}
            data: {{class_path: droptune.testing.TinyDataModule, init_args: {{in_features: {features}}}}}
            search: {{n_trials: 8, sampler: random, pruner: none, heartbeat_interval: null}}
            trainer: {{max_epochs: 2, early_stopping_patience: null, accelerator: cpu}}
            storage: sqlite:///{in_tmp / "optuna.db"}
            tracking_uri: sqlite:///{in_tmp / "mlflow.db"}
            """
        )
    )
    assert main(["tune", str(study), "--pack", "4"]) == 0
    trials = optuna.load_study(
        study_name=f"packed-{model.lower()}", storage=f"sqlite:///{in_tmp / 'optuna.db'}"
    ).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 8
    # the trials' MLflow runs, written by the packed study's writer process, are all there and closed
    client = MlflowClient(tracking_uri=f"sqlite:///{in_tmp / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"packed-{model.lower()}").experiment_id
    runs = client.search_runs([experiment], filter_string="tags.`droptune.role` = 'trial'")
    assert sorted(int(r.data.tags[TRIAL_TAG]) for r in runs) == list(range(8))
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert all(len(client.get_metric_history(r.info.run_id, "val_loss")) == 2 for r in runs)
    # the rate handed to SDPA through `.p` is a variable of its own, and differs between trials
    assert len({t.params["attention"] for t in trials}) == 8
    assert all(
        t.user_attrs["rates"][
            "net.blocks.0.attn.attn_drop"
            if model == "Vit"
            else "net.bert.encoder.layer.0.attention.self.dropout"
        ]
        == t.params["attention"]
        for t in trials
    )
