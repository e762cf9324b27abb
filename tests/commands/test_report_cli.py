"""``droptune report`` through droptune.cli.main."""

from __future__ import annotations

import optuna
import pytest

from droptune.cli import main
from droptune.testing import add_trial

optuna.logging.set_verbosity(optuna.logging.WARNING)

TYPES = {"input_dropout": "input", "fc.1": "dense"}


@pytest.fixture
def store(tmp_path, monkeypatch):
    """studies/droptune.db in a fresh working directory with studies ``mlp`` (8 trials) and ``cnn`` (4)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies").mkdir()
    for name, n in (("mlp", 8), ("cnn", 4)):
        study = optuna.create_study(study_name=name, storage="sqlite:///studies/droptune.db")
        for i in range(n):
            add_trial(study, {"input_dropout": 0.02 * i, "fc.1": 0.1 + 0.05 * i}, 1.0 + 0.1 * i, layer_types=TYPES)
    return tmp_path


def test_report_writes_one_html_file_and_says_where(store, capsys):
    assert main(["report", "mlp", "cnn", "-o", "out/study.html"]) == 0
    page = (store / "out" / "study.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "droptune report: mlp, cnn" in page
    assert "the best 3 of 8 complete trials of &#x27;mlp&#x27;" in page
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "wrote out/study.html" in captured.err.replace("\n", "")


def test_report_of_an_unknown_study_is_one_error_and_writes_nothing(store, capsys):
    assert main(["report", "nope", "-o", "r.html"]) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "no study named 'nope'" in err and "'cnn', 'mlp'" in err
    assert not (store / "r.html").exists()


def test_a_study_file_adds_what_inspect_finds_to_the_sites_table(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    storage = f"sqlite:///{tmp_path / 'o.db'}"
    (tmp_path / "tiny.yaml").write_text(
        "name: tiny\nmodel: {class_path: droptune.testing.TinyModule}\n"
        f"data: {{class_path: droptune.testing.TinyDataModule}}\nstorage: {storage}\n"
    )
    study = optuna.create_study(study_name="tiny", storage=storage)
    for i in range(4):
        add_trial(study, {"input_dropout": 0.02 * i, "dropout": 0.3}, 1.0 + i, layer_types={"input_dropout": "input", "dropout": "dense"})
    assert main(["report", "tiny.yaml", "-o", "r.html"]) == 0
    page = (tmp_path / "r.html").read_text()
    assert "<th class=\"text\">why</th>" in page and "on the model input" in page  # inspect's reason
