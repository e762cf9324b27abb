"""The MLflow dashboard as a person sees it, after a real (tiny) ``droptune tune``.

``droptune ui`` starts a real ``mlflow server`` on 127.0.0.1; the study's runs, per-epoch
gap curves and artifacts are checked through the REST API, then the runs page is loaded
in headless Chromium (skipped, with the reason, where Chromium is not installed). The
screenshot is kept in tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

import html
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest

from droptune.cli import main
from droptune.commands._ui import runs_url
from droptune.recommend import recommend
from droptune.record import gap_curve
from droptune.stores import open_study

pytestmark = pytest.mark.slow

STUDY = "dash"
N_TRIALS = 4
EPOCHS = 3
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
VIEW_FLAGS = ("--window-size=1600,1000", "--virtual-time-budget=60000")  # MLflow's charts need the time


@dataclass
class Server:
    base: str
    runs_url: str
    project: Path


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project folder holding a finished tiny study and its MLflow store."""
    root = tmp_path_factory.mktemp("dashboard")
    (root / "tiny.yaml").write_text(
        f"name: {STUDY}\nmodel: {{class_path: droptune.testing.TinyModule}}\n"
        "data: {class_path: droptune.testing.TinyDataModule}\n"
        f"search: {{n_trials: {N_TRIALS}}}\ntrainer: {{max_epochs: {EPOCHS}, early_stopping_patience: null}}\n"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        assert main(["tune", "tiny.yaml"]) == 0
    return root


@pytest.fixture(scope="module")
def server(project: Path) -> Server:
    """``droptune ui tiny.yaml`` on a free port, stopped (whole process group) at the end.

    Its first line on stdout, the URL, is the sign that the server is ready: ``droptune ui``
    prints it only once the server answers (or exits, having given up after its own timeout).
    """
    port = _free_port()
    log_path = project / "ui.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "droptune", "ui", "tiny.yaml", "--port", str(port), "--ready-timeout", "300"],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,  # the mlflow server and its workers share this group
        )
    base = f"http://127.0.0.1:{port}"
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http://"):
            pytest.fail(f"droptune ui printed no URL (exit {proc.wait()}):\n{log_path.read_text()[-3000:]}")
        # Printed only once the server answers: the first request after it succeeds.
        with urllib.request.urlopen(f"{base}/health", timeout=30) as response:
            assert response.status == 200
        yield Server(base=base, runs_url=url, project=project)
    finally:
        _stop(proc)


def test_ui_prints_the_url_of_the_studys_runs_in_droptunes_view(server):
    experiment = _get(server.base, "experiments/get-by-name", experiment_name=STUDY)["experiment"]
    expected = (
        f"{server.base}/#/experiments/{experiment['experiment_id']}/runs"
        "?viewStateShareKey=droptune&workflowType=machine_learning"
    )
    assert server.runs_url == expected
    tags = {t["key"]: t["value"] for t in experiment.get("tags", [])}
    state = json.loads(json.loads(tags["mlflow.sharedViewState.droptune"])["state"])
    assert state["orderByKey"] == "metrics.`sort_key`" and state["orderByAsc"] is True
    assert state["compareRunCharts"][0]["selectedParams"] == ["rate.input", "rate.dense"]


def test_rest_api_has_the_parent_run_and_one_child_run_per_trial(server):
    parent, children = _runs(server.base)
    assert parent["info"]["run_name"] == STUDY and parent["info"]["status"] == "FINISHED"
    assert sorted(c["info"]["run_name"] for c in children) == [f"trial-{i}" for i in range(N_TRIALS)]
    for child in children:
        tags = _tags(child)
        assert tags["droptune.role"] == "trial" and tags["droptune.state"] == "complete"
        assert child["info"]["status"] == "FINISHED"
    params = {p["key"] for p in children[0]["data"]["params"]}
    assert {"rate.input_dropout", "rate.dropout", "type.input_dropout", "type.dropout"} <= params


def test_rest_api_has_the_per_epoch_gap_history(server):
    _, children = _runs(server.base)
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{server.project / 'studies' / 'droptune.db'}")
    for child in children:
        history = _get(server.base, "metrics/get-history", run_id=child["info"]["run_id"], metric_key="overfit_gap")
        points = sorted(history["metrics"], key=lambda m: m["step"])
        assert [m["step"] for m in points] == list(range(EPOCHS))
        number = int(_tags(child)["droptune.trial_number"])
        curve = gap_curve(study.trials[number])  # Optuna keeps it to 4 digits; MLflow in full
        assert [m["value"] for m in points] == pytest.approx(curve, rel=1e-3, abs=1e-6)


def test_rest_api_lists_the_recommendation_and_plots(server):
    parent, _ = _runs(server.base)
    run_id = parent["info"]["run_id"]
    top = {f["path"] for f in _get(server.base, "artifacts/list", run_id=run_id)["files"]}
    assert {"recommendations.json", "plots", "tiny.yaml"} <= top
    plots = {f["path"] for f in _get(server.base, "artifacts/list", run_id=run_id, path="plots")["files"]}
    assert plots == {
        "plots/rates_by_layer_type.png",
        "plots/optimization_history.png",
        "plots/importance.png",
        "plots/gap_curves.png",
    }
    logged = json.loads(_artifact(server.base, run_id, "recommendations.json"))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(server.project)
        assert logged == [r.to_dict() for r in recommend(open_study("tiny.yaml"))]
    assert _artifact(server.base, run_id, "plots/gap_curves.png").startswith(PNG_MAGIC)


def test_ui_for_an_unknown_study_lists_the_experiments(server, monkeypatch, capsys):
    monkeypatch.chdir(server.project)
    assert main(["ui", "nope", "--port", str(_free_port())]) == 2  # looked up in the real store
    err = capsys.readouterr().err.replace("\n", " ")
    assert "no MLflow experiment named 'nope'" in err and f"experiments there: '{STUDY}'" in err


def test_browser_renders_the_runs_page_with_the_study(server, chromium, tmp_path):
    text = _page_text(chromium.run(tmp_path, *VIEW_FLAGS, "--dump-dom", server.runs_url))
    assert STUDY in text  # the parent run (its trials are nested, collapsed, under it)
    assert re.search(rf"\b{N_TRIALS + 1} matching runs", text), text[:2000]


def test_browser_shows_every_trial_best_first_with_droptunes_columns(server, chromium, tmp_path):
    # The URL droptune ui printed, as is: its saved view sorts by the objective (which un-nests
    # the child runs, so every trial is a row of the table) and picks the columns.
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard_runs.png"
    shot.unlink(missing_ok=True)
    text = _page_text(chromium.run(tmp_path, *VIEW_FLAGS, "--dump-dom", f"--screenshot={shot}", server.runs_url))
    assert "Sort: sort_key" in text, text[:3000]
    header = text[text.index("Run Name") : text.index("trial-")]
    for column in ("best_val_loss", "best_overfit_gap", "best_epoch", "rate.input", "rate.dense"):
        assert column in header, header
    assert _trials_shown(text) == _best_first(server)  # every trial, in the order of its value
    assert text.index(f" {STUDY} ", text.index("Run Name")) < text.index("trial-")  # the parent run first
    assert shot.read_bytes().startswith(PNG_MAGIC)
    assert _n_colours(shot) > 20  # a rendered page, not a blank one


def test_browser_shows_the_parallel_coordinates_chart_in_the_chart_tab(server, chromium, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard_parallel.png"
    shot.unlink(missing_ok=True)
    url = server.runs_url + "&compareRunsMode=CHART"  # the chart tab of the same saved view
    text = _page_text(chromium.run(tmp_path, *VIEW_FLAGS, "--dump-dom", f"--screenshot={shot}", url))
    assert "Parallel Coordinates" in text and "droptune: rates, objective, gap" in text, text[:3000]
    chart = text[text.index("Parallel Coordinates") :]
    for axis in ("rate.input", "rate.dense", "best_overfit_gap", "best_val_loss"):
        assert axis in chart, chart[:2000]
    assert _n_colours(shot) > 20


def test_browser_sorts_by_the_url_alone_when_no_view_is_saved(server, chromium, tmp_path):
    experiment = _get(server.base, "experiments/get-by-name", experiment_name=STUDY)["experiment"]
    port = int(urllib.parse.urlsplit(server.base).port or 0)
    url = runs_url("127.0.0.1", port, experiment["experiment_id"], order_by="best_val_loss")
    text = _page_text(chromium.run(tmp_path, *VIEW_FLAGS, "--dump-dom", url))
    assert _trials_shown(text) == _best_first(server)


def _trials_shown(text: str) -> list[str]:
    return list(dict.fromkeys(re.findall(r"\btrial-\d+\b", text)))


def _best_first(server: Server) -> list[str]:
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{server.project / 'studies' / 'droptune.db'}")
    return [f"trial-{t.number}" for t in sorted(study.trials, key=lambda t: (t.value, t.number))]


# --- helpers -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    try:  # the server's workers, should any outlive their parent
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _get(base: str, endpoint: str, **query: str) -> dict:
    url = f"{base}/api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def _post(base: str, endpoint: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{base}/api/2.0/mlflow/{endpoint}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def _artifact(base: str, run_id: str, path: str) -> bytes:
    url = f"{base}/get-artifact?{urllib.parse.urlencode({'path': path, 'run_uuid': run_id})}"
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def _tags(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def _runs(base: str) -> tuple[dict, list[dict]]:
    experiment = _get(base, "experiments/get-by-name", experiment_name=STUDY)["experiment"]
    runs = _post(base, "runs/search", {"experiment_ids": [experiment["experiment_id"]], "max_results": 100})["runs"]
    parents = [r for r in runs if _tags(r).get("droptune.role") == "study"]
    assert len(parents) == 1, [r["info"]["run_name"] for r in runs]
    parent = parents[0]
    children = [r for r in runs if _tags(r).get("mlflow.parentRunId") == parent["info"]["run_id"]]
    return parent, children


def _page_text(dom: str) -> str:
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.DOTALL | re.IGNORECASE)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom)))


def _n_colours(png: Path) -> int:
    import matplotlib.image
    import numpy as np

    pixels = matplotlib.image.imread(png)[::4, ::4, :3].reshape(-1, 3)
    return len(np.unique((pixels * 255).astype(np.uint8), axis=0))
