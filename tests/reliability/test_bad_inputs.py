"""Malformed study files, flags, store URLs and models: each one clear message, exit code 2,
and nothing created or changed on disk (the project folder is compared byte for byte)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from _reliability_kit import VALID, snapshot, write

from droptune.exceptions import ConfigError
from droptune.sites import load_rates


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def edit(old: str, new: str) -> Callable[[Path], None]:
    """Replace ``old`` by ``new`` in the valid study file."""
    assert old in VALID, old
    return lambda folder: write(folder, VALID.replace(old, new, 1))


def raw(data: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / "study.yaml").write_bytes(data)


SEARCH = "search: {n_trials: 2, sampler: random, pruner: none"
TRAINER = "trainer: {max_epochs: 1, early_stopping_patience: null, accelerator: cpu"
FILE = r"study\.yaml: "

STUDY_FILES = {
    "two search blocks": (lambda f: write(f, VALID + "search: {n_trials: 1000}\n"),
                          FILE + r"key 'search' appears twice in one mapping \(lines 4 and 6\); YAML would silently keep"),
    "timeout nan": (edit(SEARCH, SEARCH + ", timeout: .nan"), FILE + r"search\.timeout must be a finite number > 0 or null; got nan\."),
    "timeout inf": (edit(SEARCH, SEARCH + ", timeout: .inf"), r"search\.timeout must be a finite number > 0 or null; got inf\."),
    "timeout negative": (edit(SEARCH, SEARCH + ", timeout: -5"), r"search\.timeout must be .*; got -5\."),
    "seed 2**32": (lambda f: write(f, VALID + "seed: 4294967296\n"),
                   FILE + r"seed must be an integer in \[0, 4294967295\]; got 4294967296\. Seeds are unsigned 32-bit"),
    "seed negative": (lambda f: write(f, VALID + "seed: -1\n"), r"seed must be an integer in \[0, 4294967295\]; got -1\."),
    "seed float": (lambda f: write(f, VALID + "seed: 1.5\n"), r"seed must be an integer; got 1\.5\."),
    "seed bool": (lambda f: write(f, VALID + "seed: true\n"), r"seed must be an integer; got True\."),
    "n_trials zero": (edit("n_trials: 2", "n_trials: 0"), r"search\.n_trials must be an integer >= 1; got 0\."),
    "n_trials text": (edit("n_trials: 2", "n_trials: many"), r"search\.n_trials must be an integer; got 'many'\."),
    "range above 1": (edit(SEARCH, SEARCH + ", ranges: {dense: [0.1, 1.0]}"),
                      r"search\.ranges\.dense must be \[low, high\] with low <= high, each a finite number in \[0, 0\.9+\]; got \(0\.1, 1\.0\)\. Rates are drop"),
    "range reversed": (edit(SEARCH, SEARCH + ", ranges: {dense: [0.6, 0.1]}"), r"search\.ranges\.dense must be \[low, high\].*; got \(0\.6, 0\.1\)"),
    "range nan": (edit(SEARCH, SEARCH + ", ranges: {dense: [.nan, 0.2]}"), r"search\.ranges\.dense must be .*; got \(nan, 0\.2\)"),
    "range of unknown type": (edit(SEARCH, SEARCH + ", ranges: {conv: [0.1, 0.2]}"),
                              r"search\.ranges keys must be one of: input, dense, spatial.*; got 'conv'\."),
    "unknown layer type": (edit(SEARCH, SEARCH + ", layer_types: {'fc*': linear}"), r"search\.layer_types\.fc\* must be one of: .*; got 'linear'"),
    "sampler": (edit("sampler: random", "sampler: bayes"), r"search\.sampler must be one of: tpe, gp, random, cmaes; got 'bayes'\."),
    "pruner": (edit("pruner: none", "pruner: early"), r"search\.pruner must be one of: median, hyperband, successive_halving, none; got 'early'"),
    "granularity": (edit(SEARCH, SEARCH + ", granularity: layer"), r"search\.granularity must be one of: site, type, coarse-to-fine, global"),
    "heartbeat negative": (edit(SEARCH, SEARCH + ", heartbeat_interval: -1"), r"search\.heartbeat_interval must be an integer >= 0 or null; got -1\. Seconds; 0 or null"),
    "workers zero": (edit(SEARCH, SEARCH + ", workers: 0"), r"search\.workers must be an integer >= 1; got 0\."),
    "direction": (lambda f: write(f, VALID + "objective: {direction: down}\n"), r"objective\.direction must be one of: minimize, maximize; got 'down'"),
    "max_gap nan": (lambda f: write(f, VALID + "objective: {max_gap: .nan}\n"), r"objective\.max_gap must be a finite number or null; got nan"),
    "max_epochs zero": (edit("max_epochs: 1", "max_epochs: 0"), r"trainer\.max_epochs must be an integer >= 1; got 0\."),
    "precision": (edit(TRAINER, TRAINER + ", precision: 8-bit"), r"trainer\.precision must be one of: .*32-true.*; got '8-bit'"),
    "accelerator": (edit("accelerator: cpu", "accelerator: quantum"), r"trainer\.accelerator must be one of: auto, gpu, .*; got 'quantum'"),
    "packed precision": (lambda f: write(f, VALID.replace(SEARCH, SEARCH + ", pack: 4").replace(TRAINER, TRAINER + ", precision: 16-mixed")),
                         r"trainer\.precision must be one of: 32-true, 32, bf16-mixed; got '16-mixed'\. Packed training"),
    "packed loss": (lambda f: write(f, VALID.replace(SEARCH, SEARCH + ", pack: 4") + "loss: hinge\n"),
                    r"loss must be one of: cross_entropy, mse, or a dotted path; got 'hinge'"),
    "unknown key": (lambda f: write(f, VALID + "colour: red\n"), FILE + r"unknown key colour; valid keys: name, model, data"),
    "missing model": (lambda f: write(f, VALID.replace("model: {class_path: droptune.testing.TinyModule}\n", "")), r"missing required key model\."),
    "class does not import": (edit("droptune.testing.TinyModule", "droptune.nope.Model"), r"model\.class_path 'droptune\.nope\.Model' does not import"),
    "class of the wrong kind": (edit("droptune.testing.TinyModule", "droptune.testing.TinyDataModule"), r"is not a lightning\.pytorch\.LightningModule subclass"),
    "empty name": (edit("name: tiny", "name: ' '"), r"name must be a non-empty string; got ' '\."),
    "a list": (raw(b"- name: tiny\n- model: x\n"), r"a study file is a mapping with at least 'name', 'model' and 'data'; got list"),
    "empty file": (raw(b""), r"a study file is a mapping .*; got an empty file"),
    "invalid YAML": (raw(b"name: [unclosed\n"), FILE[:-2] + r" is not valid YAML"),
    "binary file": (raw(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), r"study file .*study\.yaml is a binary file \(a NUL byte at offset 8\), not UTF-8 text"),
    "latin-1 file": (raw(VALID.replace("tiny", "caf\u00e9").encode("latin-1")), r"study file .*study\.yaml is not UTF-8 text: byte 0xe9 on line 1 .*Save the file as UTF-8"),
    "a folder": (lambda f: ((f / "study.yaml").unlink(), (f / "study.yaml").mkdir()), r"cannot read study file .*study\.yaml: Is a directory"),
}


@pytest.mark.parametrize(("setup", "pattern"), list(STUDY_FILES.values()), ids=list(STUDY_FILES))
def test_bad_study_file(project, refused, setup, pattern):
    setup(project)
    refused(["tune", "study.yaml"], pattern)


def test_missing_study_file(project, refused):
    refused(["tune", "absent.yaml"], r"cannot read study file absent\.yaml: No such file or directory")


FLAGS = {
    "--n-trials 0": (["--n-trials", "0"], r"--n-trials \(overrides study\.yaml\): search\.n_trials must be an integer >= 1; got 0\."),
    "--n-trials -3": (["--n-trials", "-3"], r"--n-trials .*; got -3\."),
    "--timeout nan": (["--timeout", "nan"], r"--timeout \(overrides study\.yaml\): search\.timeout must be a finite number > 0 or null; got nan"),
    "--timeout -1": (["--timeout", "-1"], r"--timeout .*; got -1\."),
    "--max-epochs 0": (["--max-epochs", "0"], r"--max-epochs \(overrides study\.yaml\): trainer\.max_epochs must be an integer >= 1"),
    "--pack 0": (["--pack", "0"], r'--pack \(overrides study\.yaml\): search\.pack must be an integer >= 1 or "auto"; got 0\.'),
    "--workers 0": (["--workers", "0"], r"--workers \(overrides study\.yaml\): search\.workers must be an integer >= 1"),
    "--workers-per-gpu 0": (["--workers-per-gpu", "0"], r"--workers-per-gpu .*search\.workers_per_gpu must be an integer >= 1 or null"),
    "--accelerator abacus": (["--accelerator", "abacus"], r"--accelerator .*trainer\.accelerator must be one of: auto, gpu"),
    "--heartbeat-interval -2": (["--heartbeat-interval", "-2"], r"--heartbeat-interval .*must be an integer >= 0 or null; got -2"),
}


@pytest.mark.parametrize(("flags", "pattern"), list(FLAGS.values()), ids=list(FLAGS))
def test_bad_flag(project, refused, flags, pattern):
    refused(["tune", "study.yaml", *flags], pattern)


def _blocker(folder: Path) -> None:
    (folder / "blocker").write_text("a file where a folder should be")


STORES = {
    "--storage notaurl": (None, ["--storage", "notaurl"], r"storage 'notaurl' \(--storage\) is not a database URL; expected e\.g\. sqlite:///"),
    "--storage foo://bar": (None, ["--storage", "foo://bar"], r"storage 'foo://bar' \(--storage\): unknown database 'foo'; use sqlite or postgresql"),
    "--storage without driver": (None, ["--storage", "mysql://u@h/db"], r"storage 'mysql://u@h/db' \(--storage\): its driver does not import"),
    "--storage unknown host": (None, ["--storage", "postgresql://u@no-such-host.invalid/db"],
                               r"the Optuna storage at no-such-host\.invalid does not answer .*no-such-host\.invalid"),
    "--storage PostgreSQL down": (None, ["--storage", "postgresql+psycopg://u:secret@127.0.0.1:{port}/db"],
                                  r"storage 'postgresql\+psycopg://u:\*\*\*@127\.0\.0\.1:\d+/db' \(--storage\): the Optuna storage at 127\.0\.0\.1:\d+ does not answer within 5 s or refuses the connection .*Start the database server"),
    "--storage under a file": (_blocker, ["--storage", "sqlite:///blocker/optuna.db"], r"cannot create .*blocker/optuna\.db: .*blocker is a file, not a folder"),
    "--storage is a folder": (lambda f: (f / "dbdir").mkdir(), ["--storage", "sqlite:///dbdir"], r"dbdir is a folder, not a database file"),
    "--storage not SQLite": (lambda f: (f / "notes.db").write_text("my notes"), ["--storage", "sqlite:///notes.db"], r"notes\.db exists but is not a SQLite database"),
    "--tracking-uri foo://bar": (None, ["--tracking-uri", "foo://bar"], r"tracking_uri 'foo://bar' \(--tracking-uri\): unsupported scheme 'foo'; use one of: sqlite, postgresql"),
    "--tracking-uri folder": (None, ["--tracking-uri", "mlruns"], r"tracking_uri 'mlruns' \(--tracking-uri\): MLflow 3 refuses the old file store"),
    "--tracking-uri file:": (None, ["--tracking-uri", "file:///tmp/mlruns"], r"MLflow 3 refuses the old file store"),
    "--tracking-uri server down": (None, ["--tracking-uri", "http://127.0.0.1:{port}"],
                                   r"no MLflow tracking server answers at http://127\.0\.0\.1:\d+ within 5 s \(.*refused\)\. Start it"),
    "--tracking-uri under a file": (_blocker, ["--tracking-uri", "sqlite:///blocker/m/mlflow.db"], r"tracking_uri .*cannot create .*blocker is a file"),
}


@pytest.mark.parametrize(("setup", "flags", "pattern"), list(STORES.values()), ids=list(STORES))
def test_bad_store(project, refused, setup, flags, pattern):
    if setup is not None:
        setup(project)
    port = str(free_port())
    refused(["tune", "study.yaml", *[f.replace("{port}", port) for f in flags]], pattern)


MODELS = {
    "val_loss never logged": (edit("droptune.testing.TinyModule", "_bad_models.NoValLossModule"),
                              r"NoValLossModule\.validation_step never logs 'val_loss' \(it logs loss, train_loss\)\. .*self\.log\('val_loss', loss\)"),
    "objective.metric never logged": (lambda f: write(f, VALID + "objective: {metric: val_f1, direction: maximize}\n"),
                                      r"objective\.metric 'val_f1' is never logged by TinyModule \(it logs .*val_acc, val_loss\)"),
    "NaN loss": (edit("droptune.testing.TinyModule", "_bad_models.NanLossModule"), r"the training loss of _bad_models\.NanLossModule .* is nan on the first batch"),
    "crash in training_step": (edit("droptune.testing.TinyModule", "_bad_models.CrashingModule"),
                               r"pre-flight training of _bad_models\.CrashingModule .* failed: RuntimeError: mat1 and mat2 .*nothing was created"),
    "no dropout": (edit("droptune.testing.TinyModule", "_bad_models.NoDropoutModule"), r"no dropout site to tune: the model has no dropout modules"),
    "include matches nothing": (edit(SEARCH, SEARCH + ", include: ['encoder.*']"), r"search\.include/exclude match none of the model's sites"),
    "init_args refused": (edit("{class_path: droptune.testing.TinyModule}", "{class_path: droptune.testing.TinyModule, init_args: {bogus: 1}}"),
                          r"model\.init_args for droptune\.testing\.TinyModule: .*unexpected keyword argument 'bogus'"),
}


@pytest.mark.parametrize(("setup", "pattern"), list(MODELS.values()), ids=list(MODELS))
def test_bad_model_is_found_before_any_store(project, refused, setup, pattern):
    setup(project)
    refused(["tune", "study.yaml"], pattern)


RATES = {
    "binary": (b"\x00\x01\x02rates", r"rates file .*best\.yaml is a binary file \(a NUL byte at offset 0\)"),
    "latin-1": ("rates: {caf\u00e9: 0.1}\n".encode("latin-1"), r"rates file .*best\.yaml is not UTF-8 text: byte 0xe9 on line 1"),
    "invalid YAML": (b"rates: [0.1\n", r"best\.yaml is not valid YAML"),
    "not a mapping": (b"- 0.1\n- 0.2\n", r"best\.yaml holds no rates: expected a mapping"),
    "empty": (b"", r"best\.yaml holds no rates"),
}


@pytest.mark.parametrize(("data", "pattern"), list(RATES.values()), ids=list(RATES))
def test_bad_rates_file(tmp_path, data, pattern):
    path = tmp_path / "best.yaml"
    path.write_bytes(data)
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError, match=pattern):
        load_rates(path)
    assert snapshot(tmp_path) == before


def test_rates_file_that_is_missing(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot read rates file .*absent\.yaml: No such file or directory"):
        load_rates(tmp_path / "absent.yaml")
    assert list(tmp_path.iterdir()) == []


def test_a_message_with_brackets_is_printed_whole(project, refused):
    write(project, VALID.replace(SEARCH, SEARCH + ", ranges: {dense: [0.5, 0.2]}"))
    message = refused(["tune", "study.yaml"], r"\[low, high\]")
    assert "[0, 0.999999999999]; got (0.5, 0.2). Rates are drop probabilities in [0, 1)." in message


@pytest.fixture
def small_disk(tmp_path):  # type: ignore[no-untyped-def]
    """A 1 MiB tmpfs at ``tmp_path/disk`` (root and CAP_SYS_ADMIN only; skipped otherwise)."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_read_only_store_folder_is_one_message(small_disk, monkeypatch, refused):
    import subprocess

    write(small_disk, VALID)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    monkeypatch.chdir(small_disk)
    before = snapshot(small_disk)
    refused(["tune", "study.yaml"], r"storage '.*disk/studies/droptune\.db' \(--storage\): cannot create the Optuna storage in .*disk: the file system is read-only; choose a writable folder")
    assert snapshot(small_disk) == before


def test_a_full_store_disk_is_one_message(small_disk, monkeypatch, refused):
    write(small_disk, VALID)
    with (small_disk / "ballast").open("wb", buffering=0) as ballast, pytest.raises(OSError, match="No space"):
        while True:  # fill the disk
            ballast.write(b"\0" * 4096)
    monkeypatch.chdir(small_disk)
    before = snapshot(small_disk)
    refused(["tune", "study.yaml"], r"cannot create the Optuna storage in .*disk: the disk is full; free some space")
    assert snapshot(small_disk) == before


@pytest.mark.parametrize(
    ("flags", "pattern"),
    [
        (["--storage", "postgresql+psycopg://u@127.0.0.1:{port}/db", "--tracking-uri", "http://127.0.0.1:{port}"],
         r"storage .* the Optuna storage at 127\.0\.0\.1:\d+ does not answer"),
        (["--storage", "notaurl", "--tracking-uri", "http://127.0.0.1:{port}"], r"storage 'notaurl' \(--storage\) is not a database URL"),
        ([], r"no Optuna storage at sqlite:///.*studies/droptune\.db \(--storage\).*Run `droptune tune STUDY_FILE`"),
    ],
    ids=["PostgreSQL down", "not a URL", "no study yet"],
)
def test_worker_refuses_stores_it_cannot_use(project, refused, flags, pattern):
    port = str(free_port())
    refused(["worker", "study.yaml", *[f.replace("{port}", port) for f in flags]], pattern)
