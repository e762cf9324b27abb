"""Site names MLflow refuses as param keys (an ``nn.ModuleDict`` key ``head(p)``): every trial
completes with its run closed, and the export applies to a fresh model under the real names."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from _bad_models import OddNamesModule
from _reliability_kit import VALID
from _workers_kit import load_trials, mlflow_runs, reset_mlflow_stores
from optuna.trial import TrialState

import droptune
from droptune._mlflow_keys import site_name
from droptune.cli import main

ODD = VALID.replace("droptune.testing.TinyModule", "_bad_models.OddNamesModule")
REAL = {"drops.head(p)", "drops.a/b:c"}


@pytest.mark.timeout(300)
def test_a_study_on_sites_mlflow_refuses_completes_and_exports_the_real_names(project: Path, capsys):
    reset_mlflow_stores()
    (project / "study.yaml").write_text(ODD)
    assert main(["tune", "study.yaml"]) == 0, capsys.readouterr().err
    trials = load_trials("tiny", f"sqlite:///{project}/studies/droptune.db")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert REAL <= set(trials[0].user_attrs["rates"])  # Optuna's record keeps the real names
    parents, children = mlflow_runs("tiny", f"sqlite:///{project}/mlruns/mlflow.db")
    assert [r.info.status for r in parents] == ["FINISHED"]
    assert sorted(r.info.status for r in children) == ["FINISHED", "FINISHED"]
    keys = {k for r in children for k in r.data.params if k.startswith("rate.drops.")}
    assert keys == {"rate.drops.head_x28_p_x29_", "rate.drops.a_x2f_b_x3a_c"}
    assert {site_name(k.removeprefix("rate.")) for k in keys} == REAL  # reversible
    assert main(["export", "study.yaml", "-o", "best.yaml"]) == 0
    exported = yaml.safe_load((project / "best.yaml").read_text())
    assert REAL <= _names(exported)
    model = OddNamesModule()
    droptune.apply_rates(model, project / "best.yaml")
    best = max(trials, key=lambda t: -t.value)
    assert model.drops["head(p)"].p == pytest.approx(best.user_attrs["rates"]["drops.head(p)"], abs=1e-6)


def _names(exported: object) -> set[str]:
    """Every string key anywhere in an exported config."""
    found: set[str] = set()
    if isinstance(exported, dict):
        for key, value in exported.items():
            found.add(str(key))
            found |= _names(value)
    elif isinstance(exported, list):
        for value in exported:
            found |= _names(value)
    return found
