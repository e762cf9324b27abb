"""The MLflow database deleted while a study runs: one warning naming it, not silent writes
to the unlinked file."""

from __future__ import annotations

import logging

from _workers_kit import reset_mlflow_stores

from droptune.tracking import MlflowTracker


def test_a_deleted_mlflow_database_is_warned_about_once(tmp_path, caplog):
    reset_mlflow_stores()
    database = tmp_path / "mlruns" / "mlflow.db"
    tracker = MlflowTracker(tracking_uri=f"sqlite:///{database}", experiment="tiny")
    parent = tracker.study_run()
    run = tracker.start_trial(parent, 0, {"rate.dropout": "0.1"})
    tracker.log_epoch(run, 0, {"val_loss": 1.0})
    tracker.flush()
    assert "was deleted" not in caplog.text
    database.unlink()
    with caplog.at_level(logging.WARNING, logger="droptune.tracking._mlflow"):
        tracker.log_epoch(run, 1, {"val_loss": 0.9})
        tracker.flush()
        tracker.end_trial(run, "complete", summary={"best_val_loss": 0.9})
    warned = [r.getMessage() for r in caplog.records if "was deleted" in r.getMessage()]
    assert warned == [
        f"the MLflow database {database} was deleted while the study ran: what is logged from now on goes to the "
        "deleted file and is lost when this process ends (the Optuna study keeps every trial). Restore it from a "
        "backup, or let the study finish and rerun with a new tracking store."
    ]
    assert not database.exists()
