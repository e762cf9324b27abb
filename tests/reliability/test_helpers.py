"""The small pieces behind the fault handling: SIGTERM as an exception, the job scripts'
wait for a prepared study, and the tracking-server probe against a local HTTP server."""

from __future__ import annotations

import http.server
import os
import signal
import threading
from collections.abc import Iterator

import pytest
from _reliability_kit import VALID, write

from droptune._signals import TERMINATED_REASON, Terminated, handle_sigterm, interrupt_reason, terminated
from droptune.cli import main as droptune_main
from droptune.exceptions import StudyError
from droptune.preflight import check_tracking_uri


@pytest.fixture
def sigterm_handler() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_sigterm_raises_terminated_once_and_sets_the_reason(sigterm_handler):
    assert handle_sigterm()
    assert not terminated() and interrupt_reason(KeyboardInterrupt()).startswith("interrupted by Ctrl-C")
    with pytest.raises(Terminated):
        os.kill(os.getpid(), signal.SIGTERM)  # Python runs the handler before the next bytecode
    assert terminated()
    # What the worker loop records, whatever Lightning turned the exception into on the way.
    assert interrupt_reason(KeyboardInterrupt()) == interrupt_reason(SystemExit(1)) == TERMINATED_REASON
    os.kill(os.getpid(), signal.SIGTERM)  # a second one while closing trials: logged, not raised
    handle_sigterm()  # a new command starts clean
    assert not terminated()


def test_sigterm_handler_is_not_installed_from_another_thread(sigterm_handler):
    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.append(handle_sigterm()))
    thread.start()
    thread.join()
    assert results == [False]


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802  (the http.server API)
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[str, type[_Health]]]:
    handler = type("Health", (_Health,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_tracking_server_that_answers_passes_and_one_failing_is_named(health_server):
    uri, handler = health_server
    check_tracking_uri(uri, timeout=5)
    check_tracking_uri(uri + "/", timeout=5)
    handler.status = 503
    with pytest.raises(StudyError, match=r"the tracking server answers .*/health with HTTP 503"):
        check_tracking_uri(uri, timeout=5)


def test_wait_for_a_study_times_out_on_no_study_and_refuses_a_bad_file(tmp_path, capsys):
    study = write(tmp_path, VALID)
    assert droptune_main(["wait", str(study), "--timeout", "0.2", "--poll", "0.05"]) == 1
    assert "study 'tiny' not prepared in sqlite:///" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]  # waiting never creates a store
    write(tmp_path, VALID.replace("n_trials: 2", "n_trials: 0"))
    assert droptune_main(["wait", str(study)]) == 2
    assert "search.n_trials must be an integer >= 1; got 0." in capsys.readouterr().err


def test_wait_for_a_study_returns_once_it_is_prepared(tmp_path, monkeypatch):
    from droptune.config import load_config
    from droptune.tuning import prepare_study

    monkeypatch.chdir(tmp_path)
    study = write(tmp_path, VALID)
    prepare_study(load_config(study))
    assert droptune_main(["wait", str(study), "--timeout", "10", "--poll", "0.05"]) == 0


@pytest.mark.parametrize("metric", ["overfit_gap", "train_loss_eval"])
def test_preflight_accepts_the_gap_metrics_droptune_measures_itself(tmp_path, metric):
    # The module never logs them: droptune's gap pass does, after each validation.
    from droptune.config import load_config
    from droptune.preflight import check_training

    study = write(tmp_path, VALID + f"objective: {{metric: {metric}, direction: minimize}}\n")
    check_training(load_config(study))  # no error
