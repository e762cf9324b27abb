"""A journal store whose last record was torn (a full disk, a kill mid-append): the torn bytes
are set aside in ``<journal>.torn``, the finished trials stay readable and the study resumes."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from _reliability_kit import VALID
from optuna.trial import TrialState

import droptune.stores._journal_file
from droptune.cli import main
from droptune.stores._create import journal_storage
from droptune.stores._journal_file import TORN_SUFFIX, JournalWriteError

REPO = Path(__file__).resolve().parents[2]
JOURNAL_STUDY = VALID.replace("n_trials: 2", "n_trials: 3") + "storage: journal:///studies/tiny.journal\ntracking_uri: none\n"


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A journal holding a finished 3-trial study (made once, copied by each test).

    Made by another process: a trial whose end is torn off then belongs to a dead worker, as
    after a real crash (this process's own trials would count as still running)."""
    folder = tmp_path_factory.mktemp("journal")
    (folder / "study.yaml").write_text(JOURNAL_STUDY)
    tune_in_another_process(folder)
    return folder / "studies" / "tiny.journal"


def subprocess_env() -> dict[str, str]:
    """This environment, with this checkout first on the import path and one thread."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1")


def tune_in_another_process(folder: Path) -> None:
    """``droptune tune study.yaml`` in ``folder``, in a new process; it must succeed."""
    done = subprocess.run([sys.executable, "-m", "droptune", "tune", "study.yaml"], cwd=folder, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr


def states(path: Path) -> list[TrialState]:
    study = optuna.load_study(study_name="tiny", storage=journal_storage(path))
    return [t.state for t in study.get_trials()]


def test_a_torn_last_record_at_every_byte_offset_is_set_aside_and_the_study_goes_on(finished, tmp_path, caplog):
    data = finished.read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1  # the last record: trial 2's tell
    last = data[start:]
    assert states(finished) == [TrialState.COMPLETE] * 3
    path = tmp_path / "tiny.journal"
    for cut in range(1, len(last)):  # every torn length, down to its one-byte start
        path.write_bytes(data[: start + cut])
        Path(f"{path}{TORN_SUFFIX}").unlink(missing_ok=True)
        caplog.clear()
        assert states(path) == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.RUNNING], cut
        assert path.read_bytes() == data[:start], cut  # cut back to the last whole record
        assert Path(f"{path}{TORN_SUFFIX}").read_bytes() == last[:cut] + b"\n", cut  # kept, not dropped
        assert [r.message for r in caplog.records if "torn record" in r.message] == [
            f"the journal {path} ended with a torn record ({cut} bytes, from a full disk or a killed write): "
            f"set aside in {path}{TORN_SUFFIX}; the finished trials are kept and the study resumes"
        ], cut
        storage = journal_storage(path)  # the next write lands on a clean line and reads back
        study = optuna.load_study(study_name="tiny", storage=storage)
        study.set_user_attr("after", cut)
        assert optuna.load_study(study_name="tiny", storage=journal_storage(path)).user_attrs["after"] == cut


def test_a_journal_damaged_by_an_append_after_a_torn_line_is_repaired(finished, tmp_path, caplog):
    # What droptune did before: Optuna's own backend glues the next record onto the torn line.
    from optuna.storages.journal import JournalFileBackend

    path = tmp_path / "tiny.journal"
    shutil.copy(finished, path)
    with path.open("r+b") as handle:  # truncate -s -20
        handle.truncate(path.stat().st_size - 20)
    plain = optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    optuna.load_study(study_name="tiny", storage=plain).set_user_attr("glued", 1)  # onto the torn line
    with pytest.raises(ValueError):  # from the next write on, the study is unreadable to Optuna alone
        optuna.load_study(study_name="tiny", storage=plain).set_user_attr("next", 2)
    with pytest.raises(ValueError):
        optuna.load_study(study_name="tiny", storage=optuna.storages.JournalStorage(JournalFileBackend(str(path))))
    study = optuna.load_study(study_name="tiny", storage=journal_storage(path))
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.RUNNING]
    assert study.user_attrs["glued"] == 1 and study.user_attrs["next"] == 2  # the glued record is kept
    assert "torn record followed by others" in caplog.text
    assert Path(f"{path}{TORN_SUFFIX}").read_bytes().startswith(b'{"op_code":6')


@pytest.mark.timeout(300)
def test_the_cli_resumes_a_study_whose_journal_lost_its_last_20_bytes(finished, tmp_path, monkeypatch, capsys):
    project = tmp_path / "project"
    (project / "studies").mkdir(parents=True)
    (project / "study.yaml").write_text(JOURNAL_STUDY.replace("n_trials: 3", "n_trials: 4"))
    path = project / "studies" / "tiny.journal"
    shutil.copy(finished, path)
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size - 20)
    monkeypatch.chdir(project)
    assert main(["tune", "study.yaml"]) == 0
    assert "ended with a torn record (" in capsys.readouterr().err
    done = states(path)  # the torn tell's trial was a dead worker's: failed, retried; 4 complete in all
    assert done.count(TrialState.COMPLETE) == 4 and TrialState.RUNNING not in done
    assert main(["recommend", "study.yaml"]) == 0
    assert main(["export", "study.yaml", "-o", "best.yaml"]) == 0


def test_a_full_disk_mid_append_leaves_the_journal_as_it_was(finished, tmp_path, monkeypatch):
    path = tmp_path / "tiny.journal"
    shutil.copy(finished, path)
    before = path.read_bytes()
    real = droptune.stores._journal_file._write_all

    def half_then_enospc(fd: int, data: bytes) -> None:
        real(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    study = optuna.load_study(study_name="tiny", storage=journal_storage(path))
    monkeypatch.setattr(droptune.stores._journal_file, "_write_all", half_then_enospc)
    with pytest.raises(JournalWriteError, match=r"could not write to the journal .*tiny\.journal: No space left on device\. "
                       r"The journal is as it was before this write"):
        study.set_user_attr("lost", 1)
    assert path.read_bytes() == before  # no torn line left behind
    monkeypatch.setattr(droptune.stores._journal_file, "_write_all", real)
    assert states(path) == [TrialState.COMPLETE] * 3
    study = optuna.load_study(study_name="tiny", storage=journal_storage(path))
    study.set_user_attr("kept", 1)
    assert optuna.load_study(study_name="tiny", storage=journal_storage(path)).user_attrs["kept"] == 1


# Run in its own process: the trial the disk fills up in cannot be closed (the disk is full),
# and only a worker that is gone has its trial failed and retried by the next command.
FULL_DISK_TUNE = """
import errno, sys
import droptune.stores._journal_file as journal
from droptune.cli import main
real, calls = journal._write_all, []
def full_after_a_few(fd, data):
    calls.append(1)
    if len(calls) > 3:  # the disk fills up inside the first new trial
        real(fd, data[:7])
        raise OSError(errno.ENOSPC, "No space left on device")
    real(fd, data)
journal._write_all = full_after_a_few
sys.exit(main(["tune", "study.yaml"]))
"""


@pytest.mark.timeout(300)
def test_a_full_disk_during_tune_is_one_message_and_the_study_stays_readable(finished, tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "studies").mkdir(parents=True)
    (project / "study.yaml").write_text(JOURNAL_STUDY.replace("n_trials: 3", "n_trials: 5"))
    path = project / "studies" / "tiny.journal"
    shutil.copy(finished, path)
    full = subprocess.run([sys.executable, "-c", FULL_DISK_TUNE], cwd=project, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300, check=False)
    assert full.returncode == 2, full.stderr
    assert "No space left on device. The journal is as it was before this write" in full.stderr
    assert "Traceback" not in full.stderr
    before = states(path)
    assert before[:3] == [TrialState.COMPLETE] * 3 and before.count(TrialState.COMPLETE) == 3  # still readable
    assert not Path(f"{path}{TORN_SUFFIX}").exists()  # nothing torn: each failed append was cut back
    # The next command reads the study. (A trial whose start the full disk kept from being
    # written carries no worker, so a later `tune` cannot tell it is dead: not reaped yet.)
    monkeypatch.chdir(project)
    assert main(["recommend", "study.yaml"]) == 0
    done = states(path)
    assert done == before


def test_a_torn_tail_that_cannot_be_set_aside_is_one_error_and_changes_nothing(finished, tmp_path, monkeypatch):
    path = tmp_path / "tiny.journal"
    path.write_bytes(finished.read_bytes()[:-20])
    before = path.read_bytes()

    def full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(droptune.stores._journal_file, "_set_aside", full)
    with pytest.raises(JournalWriteError, match=r"ends with a torn record, which could not be set aside in .*\.torn: "
                       r"No space left on device\. Nothing was changed"):
        journal_storage(path)
    assert path.read_bytes() == before
    monkeypatch.undo()
    assert states(path) == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.RUNNING]
