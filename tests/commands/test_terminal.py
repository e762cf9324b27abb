"""What the CLI writes, at 80, 100 and 160 columns and piped: words whole, no blank padding, no logger names.

The commands run in subprocesses, whose output is a pipe (never a terminal): ``COLUMNS``
then says how wide the user's terminal is, and with no ``COLUMNS`` no width is known.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
from rich.console import Console

from droptune.cli import main
from droptune.commands._progress import trial_progress
from droptune.commands._terminal import ConsoleLogHandler, wrap_words

FAKE_SERVER = Path(__file__).with_name("_fake_mlflow_server.py")
LONG_NAME = "a-study-with-a-rather-long-name-to-wrap"


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> Path:
    """A finished 4-trial study (its store in the folder returned), tuned once for the module."""
    folder = tmp_path_factory.mktemp("study")
    (folder / "tiny.yaml").write_text(
        textwrap.dedent(
            f"""
            name: {LONG_NAME}
            model: {{class_path: droptune.testing.TinyModule}}
            data: {{class_path: droptune.testing.TinyDataModule}}
            search: {{n_trials: 4, sampler: random, pruner: none, granularity: site}}
            trainer: {{max_epochs: 1, early_stopping_patience: null, accelerator: cpu}}
            tracking_uri: none
            """
        )
    )
    before = os.getcwd()
    os.chdir(folder)
    try:
        assert main(["tune", "tiny.yaml"]) == 0
    finally:
        os.chdir(before)
    return folder


@pytest.fixture(scope="module")
def unwrapped(tuned) -> str:
    """``recommend``'s output where no width is known (piped, no COLUMNS)."""
    return droptune(tuned, "recommend", "tiny.yaml", columns=None).stdout


def droptune(folder: Path, *args: str, columns: int | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run(
        [sys.executable, "-m", "droptune", *args], cwd=folder, env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=300,
    )


def assert_wrapped(text: str, unwrapped: str, width: int) -> None:
    """Every line fits ``width`` (or is one word), no line is blank, and no word was cut in two."""
    lines = text.splitlines()
    assert lines and all(line.strip() for line in lines), f"a blank line in:\n{text}"
    too_long = [line for line in lines if len(line.rstrip()) > width and len(line.split()) > 1]
    assert not too_long, too_long
    # The same words as the unwrapped text: a word cut at a line's end would be two words here.
    assert text.split() == unwrapped.split()


@pytest.mark.parametrize("columns", [80, 100, 160])
def test_recommend_wraps_its_prose_by_words_at_the_terminal_width(tuned, unwrapped, columns):
    shown = droptune(tuned, "recommend", "tiny.yaml", columns=columns)
    assert shown.returncode == 0
    prose = lambda out: out[out.index("warning:"):]  # noqa: E731  (after the table)
    assert_wrapped(prose(shown.stdout), prose(unwrapped), columns)
    table = shown.stdout[: shown.stdout.index("warning:")].splitlines()
    assert all(line.strip() for line in table), "blank padding lines around the table"
    assert all(len(line.rstrip()) <= columns for line in table)
    assert "dense" in shown.stdout and "input" in shown.stdout


def test_piped_without_a_width_each_paragraph_is_one_line_and_json_stays_clean(tuned):
    piped = droptune(tuned, "recommend", "tiny.yaml", "--format", "json", columns=None)
    assert piped.returncode == 0
    assert piped.stdout.lstrip().startswith("[")  # stdout is the data only
    lines = piped.stderr.splitlines()
    # Not wrapped at 80: each warning, and the advice that follows them, is one line.
    assert lines and all(line.startswith(("warning: ", "To train")) for line in lines), lines
    assert max(map(len, lines)) > 80


def test_an_error_keeps_its_path_whole_on_a_narrow_terminal(tuned):
    missing = tuned / "no-such-folder-with-a-long-name" / "study-file-with-a-long-name.yaml"
    result = droptune(tuned, "tune", str(missing), columns=40)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: ")
    assert any(str(missing) in line for line in lines)  # on one line, copyable
    assert all(len(line) <= 40 or len(line.split()) == 1 for line in lines), lines


def test_wrap_words_never_cuts_a_word():
    text = "MLflow: experiment x in sqlite:////home/someone/project/mlruns/mlflow.db; to look at it, run"
    for width in (10, 20, 40):
        wrapped = wrap_words(text, width)
        assert wrapped.split() == text.split()
        assert all(len(line) <= width or " " not in line.strip() for line in wrapped.splitlines())
    assert wrap_words("  droptune ui a b c", 12).splitlines() == ["  droptune", "  ui a b c"]


def test_log_lines_name_the_level_not_the_logger(tuned, capsys, monkeypatch):
    monkeypatch.chdir(tuned)
    assert main(["recommend", "tiny.yaml", "--format", "json"]) == 0  # installs the CLI's logging
    capsys.readouterr()
    logging.getLogger("droptune.tuning._recorder").warning("trial %d failed: %s", 3, "interrupted")
    assert capsys.readouterr().err == "warning: trial 3 failed: interrupted\n"

    console = Console(file=io.StringIO(), width=200)
    ConsoleLogHandler(console, debug=True).handle(logging.makeLogRecord({"name": "x.y", "levelname": "INFO", "msg": "m"}))
    assert console.file.getvalue() == "INFO x.y: m\n"  # --debug keeps the logger's name


def interrupted_progress(console: Console) -> str:
    study = optuna.create_study()
    with pytest.raises(KeyboardInterrupt), trial_progress("s", 5, study, console=console, period_s=3600):
        raise KeyboardInterrupt
    return console.file.getvalue()


def test_ctrl_c_erases_the_bar_instead_of_leaving_stale_counts():
    shown = interrupted_progress(Console(file=io.StringIO(), force_terminal=True, width=100))
    last_bar = shown.rindex("failed 0")
    # After the last drawing of the bar, only cursor moves and line erasures: the bar is gone.
    rest = shown[last_bar:].split("\x1b[2K")
    assert len(rest) >= 2 and not any(c.isalnum() for c in rest[-1].replace("\x1b[1A", "").replace("\x1b[?25h", ""))

    piped = interrupted_progress(Console(file=io.StringIO(), force_terminal=False, width=100))
    assert "failed" not in piped  # off a terminal, no final status line with counts that no longer hold


def test_ctrl_c_on_ui_stops_the_server_with_one_line(tmp_path):
    """SIGINT to droptune ui's process group, as Ctrl-C in a terminal sends it: one line, exit 0."""
    (tmp_path / "mlruns").mkdir()
    (tmp_path / "mlruns" / "mlflow.db").touch()
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launcher = textwrap.dedent(
        f"""
        import sys
        import droptune.commands._ui as ui
        real = ui.server_command
        ui.server_command = lambda uri, **kw: [sys.executable, {str(FAKE_SERVER)!r}, *real(uri, **kw)[4:]]
        ui._study_url = lambda host, port, *a: f"http://{{host}}:{{port}}/"
        from droptune.cli import main
        sys.exit(main(["ui", "--port", "{port}"]))
        """
    )
    env = {**os.environ, "FAKE_MLFLOW_MODE": "serve", "FAKE_MLFLOW_RECORD": str(tmp_path / "fake.jsonl")}
    proc = subprocess.Popen(
        [sys.executable, "-c", launcher], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,  # its own process group, as a terminal's foreground job
        # A shell without job control starts background jobs with SIGINT ignored, and Python keeps
        # an ignored SIGINT: give the child the default a terminal's foreground job has.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler),
    )
    try:
        url = proc.stdout.readline()  # printed once the server answers
        assert url.strip() == f"http://127.0.0.1:{port}/"
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    lines = err.splitlines()
    assert lines[-1] == "stopped the MLflow UI."
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert '"stopped"' in (tmp_path / "fake.jsonl").read_text()  # the server was stopped, not orphaned
