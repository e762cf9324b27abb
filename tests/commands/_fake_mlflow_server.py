"""Stands in for ``mlflow server`` in tests/commands/test_ui_cli.py (run as a script).

Takes the real server's arguments, records them and every health request it answers in the
JSON-lines file ``$FAKE_MLFLOW_RECORD``, and behaves as ``$FAKE_MLFLOW_MODE`` says:

- ``late``: answers ``/health`` 503 twice, then 200, then exits 0 (a server that starts
  slowly, then stops);
- ``sigterm``: answers 200, then sends SIGTERM to ``droptune ui`` (its parent) and waits to
  be stopped (a user stopping ``droptune ui``);
- ``never``: prints a few log lines and never listens;
- ``dies``: prints an error and exits 3 before listening;
- ``serve``: answers 200 until stopped; stopped, it prints a traceback first, as uvicorn does.

Stopped by SIGINT (as ``droptune ui`` stops the real one), it records ``stopped`` and exits 0.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import sys


def record(event: dict) -> None:
    with open(os.environ["FAKE_MLFLOW_RECORD"], "a") as f:
        f.write(json.dumps(event) + "\n")
        f.flush()


def stopped(signum: int, frame: object) -> None:
    record({"event": "stopped"})
    if os.environ["FAKE_MLFLOW_MODE"] == "serve":
        print("Traceback (most recent call last):\n" + "  uvicorn ...\n" * 30 + "KeyboardInterrupt", flush=True)
    sys.exit(0)


class Health(http.server.BaseHTTPRequestHandler):
    answers: list[int] = []

    def do_GET(self) -> None:  # noqa: N802  (http.server's name)
        mode = os.environ["FAKE_MLFLOW_MODE"]
        n = len(Health.answers)
        code = 503 if mode == "late" and n < 2 else 200
        Health.answers.append(code)
        record({"event": "health", "code": code})  # recorded before droptune ui can see the answer
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        print("fake mlflow:", format % args, flush=True)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, stopped)
    mode = os.environ["FAKE_MLFLOW_MODE"]
    record({"event": "start", "argv": argv, "job_execution": os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION")})
    print("fake mlflow: booting", flush=True)
    if mode == "dies":
        print("fake mlflow: sqlite3.OperationalError: database is locked", flush=True)
        return 3
    if mode == "never":
        print("fake mlflow: still migrating the database", flush=True)
        while True:
            signal.pause()
    port = int(argv[argv.index("--port") + 1])
    server = http.server.HTTPServer((argv[argv.index("--host") + 1], port), Health)
    while mode == "serve" or not Health.answers or Health.answers[-1] != 200:
        server.handle_request()
    server.server_close()
    if mode == "sigterm":
        os.kill(os.getppid(), signal.SIGTERM)
        while True:
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
