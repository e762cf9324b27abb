"""The CLI's fixed costs: what it imports before it answers, and how it exits.

`--version`, `--help` and a study file's schema mistakes each run in a fresh interpreter,
which then reports the heavy modules it holds: torch, Lightning, Optuna and MLflow take
seconds to import, and none of these paths needs them. A real study run as the program
exits without collecting its garbage, and must still leave its stores closed and whole.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from droptune.cli import COMMANDS

HEAVY = ("torch", "lightning", "optuna", "mlflow")

# Runs the CLI on each argument list in turn, in one fresh interpreter, and prints what the
# interpreter holds after each: the first case to import something heavy is the one to blame.
_SCRIPT = textwrap.dedent(
    """
    import contextlib, io, json, sys
    from droptune.cli import main
    heavy = {heavy!r}
    results = []
    for argv in {cases!r}:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit:
                code = exit.code
        results.append({{"argv": argv, "code": code, "out": out.getvalue(), "err": err.getvalue(),
                         "heavy": sorted(m for m in heavy if m in sys.modules)}})
    print(json.dumps(results))
    """
)


def run_cli(cases: list[list[str]], cwd) -> list[dict]:
    script = _SCRIPT.format(heavy=HEAVY, cases=cases)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=cwd, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def test_version_and_every_help_import_no_heavy_module(tmp_path):
    cases = [["--version"], ["--help"]] + [[name, "--help"] for name in COMMANDS]
    results = run_cli(cases, tmp_path)
    for result in results:
        assert result["code"] == 0, result
        assert result["heavy"] == [], result["argv"]
    assert "droptune 0.1.0" in results[0]["out"]
    assert all(name in results[1]["out"] for name in COMMANDS)  # the full help, every subcommand listed
    assert "--n-trials" in results[2]["out"]  # `tune --help`: the real argument list


STUDY = "name: s\nmodel: {class_path: droptune.testing.TinyModule}\ndata: {class_path: droptune.testing.TinyDataModule}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (STUDY + "serch: {n_trials: 3}\n", "serch"),  # unknown key
        (STUDY + "search: {n_trials: many}\n", "search.n_trials"),  # wrong type
        (STUDY + "search: {ranges: {dense: [0.1, 1.5]}}\n", "search.ranges.dense"),  # out of range
        # trainer.accelerator comes before seed in the table, but its choices are Lightning's: checked last
        (STUDY + "trainer: {accelerator: abacus}\nseed: -1\n", "seed must be"),
        (STUDY.replace("droptune.testing.TinyModule", "nowhere.Model") + "seed: -1\n", "seed"),  # before the class
    ],
    ids=["unknown-key", "wrong-type", "out-of-range", "seed-before-accelerator", "seed-before-class-path"],
)
def test_a_schema_mistake_is_refused_without_importing_the_stack(tmp_path, text, expected):
    (tmp_path / "study.yaml").write_text(text)
    results = run_cli([["tune", "study.yaml"], ["worker", "study.yaml"], ["wait", "study.yaml"]], tmp_path)
    for result in results:
        assert result["code"] == 2, result
        assert expected in result["err"], result["err"]
        assert "loading study" not in result["err"]  # refused before the first line about loading
        assert result["heavy"] == [], result["argv"]


def test_the_first_line_is_printed_before_lightning_is_imported(tmp_path):
    # The class path does not import: the run stops right after the line, with the class's error.
    (tmp_path / "study.yaml").write_text(STUDY.replace("droptune.testing.TinyModule", "nowhere.Model"))
    script = textwrap.dedent(
        """
        import sys
        from droptune.cli import main
        from droptune.commands import _study_args
        announce = _study_args._announce
        def spy(spec):
            print("heavy at the first line:", sorted(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
            announce(spec)
        _study_args._announce = spy
        sys.exit(main(["tune", "study.yaml"]))
        """
    ).format(heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == "heavy at the first line: []"
    assert lines[1] == "droptune: loading study s (study.yaml) …"
    assert "model.class_path 'nowhere.Model' does not import" in done.stderr


def test_the_cli_repeats_the_library_constants_it_shows_in_help():
    from droptune import export
    from droptune.commands import _confirm, _export, _recommend
    from droptune.recommend import _table
    from droptune.tuning import _confirm as confirmation

    assert _recommend.FORMATS == _table.FORMATS
    assert _export.EXPORT_FORMATS == export.EXPORT_FORMATS
    assert (_confirm.DEFAULT_TOP, _confirm.DEFAULT_SEEDS) == (confirmation.DEFAULT_TOP, confirmation.DEFAULT_SEEDS)


def test_the_site_api_loads_on_first_use():
    code = (
        "import sys, droptune; before = 'torch' in sys.modules; droptune.apply_rates; "
        "print(before, 'torch' in sys.modules, droptune.LAYER_TYPES == droptune.sites.LAYER_TYPES)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True", "True"]


def test_a_study_run_as_the_program_exits_with_its_stores_closed_and_whole(tmp_path):
    (tmp_path / "study.yaml").write_text(STUDY + "search: {n_trials: 1}\ntrainer: {max_epochs: 1}\n")
    done = subprocess.run(
        [sys.executable, "-m", "droptune", "tune", "study.yaml"], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr  # nothing printed by the exit's clean-up
    optuna_db, mlflow_db = tmp_path / "studies" / "droptune.db", tmp_path / "mlruns" / "mlflow.db"
    # Closed connections: SQLite folded its write-ahead logs back into the databases.
    assert not list(tmp_path.glob("*/*.db-wal")), list(tmp_path.glob("*/*"))
    with sqlite3.connect(optuna_db) as db:
        assert db.execute("SELECT state FROM trials").fetchall() == [("COMPLETE",)]
    with sqlite3.connect(mlflow_db) as db:
        assert sorted(db.execute("SELECT name, status FROM runs").fetchall()) == [("s", "FINISHED"), ("trial-0", "FINISHED")]
