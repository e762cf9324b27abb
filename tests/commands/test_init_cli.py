"""``droptune init`` and ``droptune --version`` through droptune.cli.main."""

from __future__ import annotations

import pytest

from droptune import __version__
from droptune.cli import main
from droptune.config import load_config
from droptune.examples import example_names


def test_init_writes_the_default_example_and_says_how_to_run_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "droptune tune digits_cnn.yaml"  # one copyable line
    assert load_config(tmp_path / "digits_cnn.yaml").name == "digits-cnn"


def test_init_refuses_to_overwrite_and_lists_examples(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["init", "digits_rnn", "-o", "s.yaml"]) == 0
    assert main(["init", "digits_rnn", "-o", "s.yaml"]) == 2
    assert "s.yaml exists already" in capsys.readouterr().err.replace("\n", " ")
    assert main(["init", "--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == example_names()


def test_error_text_is_printed_verbatim_brackets_included(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["init", "[bold]x[/bold]"]) == 2
    lines = capsys.readouterr().err.splitlines()
    expected = f"no example study named '[bold]x[/bold]'; the examples are: {', '.join(example_names())}."
    assert lines[0] == f"error: {expected}"  # markup left alone, and one line however long


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"droptune {__version__}"
