"""A light background check that a remote MLflow tracking server still answers.

droptune talks to the server at a trial's start and end and when a run's buffered metrics are
flushed (at most every ``FLUSH_S`` of :mod:`droptune.tracking._mlflow`, at an epoch's end): with
epochs longer than 30 s, a dead server would go unseen for that long. MLflow has no liveness
hook of its own, hence this small loop on the server's ``GET <uri>/health`` (``mlflow.server``
answers ``"OK", 200`` there, and its auth app leaves the path open). It asks through MLflow's
own HTTP helper, so that the user's TLS and credential settings apply as to every other request.

Bound on detection: the server dies just after a probe began; :data:`FAILURES` probes follow
:data:`EVERY_S` apart, the last one failing within :data:`TIMEOUT_S`: at most
``FAILURES * EVERY_S + TIMEOUT_S`` = 25 s, under the 30 s droptune promises.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

__all__ = ["EVERY_S", "FAILURES", "TIMEOUT_S", "Liveness", "Probe", "health_probe"]

log = logging.getLogger(__name__)

EVERY_S = 10.0  # seconds between the starts of two probes
TIMEOUT_S = 5.0  # one probe's connect-and-read timeout, no retries
FAILURES = 2  # consecutive failed probes that make the server lost (one may be a blip)
JOIN_S = TIMEOUT_S + 1.0  # how long stopping waits for the thread (it may be inside a probe)

#: A probe: ``None`` when the server answered, else why not (one line).
Probe = Callable[[], "str | None"]


def health_probe(tracking_uri: str, timeout: float = TIMEOUT_S) -> Probe:
    """A probe that asks ``GET <tracking_uri>/health`` once, within ``timeout`` seconds.

    Any answer below 500 counts as alive (a 401 or 404 comes from a server that runs); a 5xx
    (a proxy whose server is gone), a refused connection or a timeout does not.
    """

    def probe() -> str | None:
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request

        try:
            response = http_request(get_default_host_creds(tracking_uri), "/health", "GET", max_retries=0,
                                    timeout=timeout, raise_on_status=False)
        except Exception as err:  # MLflow wraps connection errors and timeouts in MlflowException
            return f"/health: {_cause(str(err))}"
        if response.status_code >= 500:
            return f"/health answered HTTP {response.status_code}"
        return None

    return probe


def _cause(text: str) -> str:
    """The cause in MLflow's wording of a failed request (urllib3's chain of reprs is long)."""
    found = re.search(r"\[Errno -?\d+\][^\"')]*|[Rr]ead timed out|timed out", text)
    return found.group(0).strip() if found else (text.strip().splitlines() or [""])[0][:200]


class Liveness:
    """Probe a server every :data:`EVERY_S` seconds; call ``on_lost`` after :data:`FAILURES` failures in a row.

    :meth:`step` holds the logic and is driven by a clock passed in (tests drive it by hand);
    :meth:`start` runs it on a daemon thread until :meth:`stop`, or until the server is lost.

    Args:
        probe: Asks the server once (see :func:`health_probe`).
        on_lost: Called once, with why, when the server is lost.
        every: Seconds between the starts of two probes.
        failures: Consecutive failed probes that make the server lost (at least 1).
        clock: Monotonic seconds.
    """

    def __init__(self, probe: Probe, on_lost: Callable[[str], None], *, every: float = EVERY_S,
                 failures: int = FAILURES, clock: Callable[[], float] = time.monotonic) -> None:
        self.probe = probe
        self.on_lost = on_lost
        self.every = every
        self.failures = max(1, failures)
        self.clock = clock
        self.failed = 0  # consecutive failed probes so far
        self.lost = False
        self._next = clock() + every  # the tracker's own first call has just talked to the server
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> float:
        """Probe if one is due; return the seconds until the next is (``inf`` once lost)."""
        if self.lost:
            return float("inf")
        now = self.clock()
        if now < self._next:
            return self._next - now
        why = self.probe()
        self._next = max(now + self.every, self.clock())  # a slow probe does not make the next one early
        if why is None:
            self.failed = 0
        else:
            self.failed += 1
            log.debug("tracking server probe %d/%d failed: %s", self.failed, self.failures, why)
            if self.failed >= self.failures:
                self.lost = True
                noun = "check" if self.failures == 1 else f"{self.failures} checks in a row"
                self.on_lost(f"no answer to {noun}, {why}")
                return float("inf")
        return max(0.0, self._next - self.clock())

    def start(self) -> None:
        """Run :meth:`step` on a daemon thread (nothing if one runs already or the server is lost)."""
        if self.lost or (self._thread is not None and self._thread.is_alive()):
            return
        self._stop = threading.Event()  # its own: a thread stopped but still inside a probe stays stopped
        self._thread = threading.Thread(target=self._run, args=(self._stop,), name="droptune-tracking-health",
                                        daemon=True)
        self._thread.start()

    def stop(self, *, wait: bool = True) -> None:
        """Stop the thread; with ``wait``, wait for it at most :data:`JOIN_S` (a daemon: it never holds the process)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join(JOIN_S)

    def running(self) -> bool:
        """Whether the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self, stop: threading.Event) -> None:
        try:
            wait = self.step()
            while wait != float("inf") and not stop.wait(wait):
                wait = self.step()
        except Exception:  # a check that cannot run must not end the study; the tracker's own calls still do
            log.debug("the tracking server's health check stopped", exc_info=True)
