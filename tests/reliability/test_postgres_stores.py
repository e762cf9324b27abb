"""Store checks and store creation against a real PostgreSQL server (skipped without one)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from _reliability_kit import VALID, write

from droptune.config import load_config
from droptune.exceptions import StudyError
from droptune.preflight import check_storage_url
from droptune.stores._create import create_stores_locked
from droptune.stores._lock import CREATE_LOCK_KEY

# The PostgreSQL server fixture of the end-to-end tests, loaded under another module name.
_spec = importlib.util.spec_from_file_location("_e2e_servers", Path(__file__).resolve().parents[1] / "e2e" / "conftest.py")
assert _spec is not None and _spec.loader is not None
_servers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_servers)
postgres_url = _servers.postgres_url


def _try_lock(url: str) -> bool:
    """Whether another session could take the store-creation lock now (and release it again)."""
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    with engine.connect() as connection:
        got = connection.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:k)"), {"k": CREATE_LOCK_KEY}).scalar()
        if got:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": CREATE_LOCK_KEY})
        connection.commit()
    engine.dispose()
    return bool(got)


def test_a_reachable_database_passes_and_a_missing_one_is_named(postgres_url):
    check_storage_url(postgres_url, timeout=5)
    with pytest.raises(StudyError, match=r"storage .*/no_such_db' \(--storage\): .*does not answer within 5 s or refuses.*no_such_db"):
        check_storage_url(postgres_url.rsplit("/", 1)[0] + "/no_such_db", timeout=5)


def test_store_creation_holds_an_advisory_lock_other_sessions_wait_for(postgres_url, tmp_path):
    spec = load_config(write(tmp_path, VALID.replace("name: tiny", "name: locked")), {"storage": postgres_url})
    assert _try_lock(postgres_url)
    with create_stores_locked(spec):
        assert not _try_lock(postgres_url)  # a second first start waits here
    assert _try_lock(postgres_url)


def test_a_failed_start_removes_the_study_it_created_in_postgres(postgres_url, tmp_path):
    # prepare_study's pre-flight would refuse this tracking URI before creating anything; the
    # creation step itself is what must clean up when a store fails half way.
    from droptune.tuning._lifecycle import _prepare

    (tmp_path / "blocker").write_text("in the way of the MLflow folder")
    spec = load_config(
        write(tmp_path, VALID.replace("name: tiny", "name: half-made")),
        {"storage": postgres_url, "tracking_uri": f"sqlite:///{tmp_path}/blocker/mlruns/mlflow.db"},
    )
    with pytest.raises(OSError), create_stores_locked(spec):
        _prepare(spec, None)
    assert "half-made" not in [s.study_name for s in optuna.get_all_study_summaries(postgres_url)]
