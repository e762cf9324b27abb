"""SIGTERM handled like Ctrl-C: the running trial ends FAILED with the reason, the worker exits.

Slurm (``scancel``, the end of a time limit) and Kubernetes (deleting or evicting a pod)
stop a job by sending SIGTERM, then SIGKILL a little later. Python's default is to die at
once on SIGTERM, leaving the running trial RUNNING until a heartbeat notices. With
:func:`handle_sigterm` installed, SIGTERM raises :class:`Terminated`, a KeyboardInterrupt,
so every loop that already closes its trials on Ctrl-C does the same here; the reason
recorded is :func:`interrupt_reason`'s ("terminated by SIGTERM ..."), and the failed
trial is redone when the study resumes. (A Python process running as PID 1 in a container
is not even stopped by SIGTERM without a handler.)
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

__all__ = ["Terminated", "TrialsStopped", "handle_sigterm", "interrupt_reason", "terminated"]

log = logging.getLogger(__name__)

TERMINATED_REASON = "terminated by SIGTERM (the job scheduler or `kill` stopped this worker); redone on resume"
_received: list[int] = []


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM arrives (see :func:`handle_sigterm`)."""


class TrialsStopped(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, raised again once the ``n_trials`` running trials were recorded as failed.

    A plain KeyboardInterrupt means no trial was involved (the interrupt came before or
    outside the trial loop): the CLI then claims nothing about trials.
    """

    def __init__(self, n_trials: int) -> None:
        super().__init__(n_trials)
        self.n_trials = n_trials


def handle_sigterm() -> bool:
    """Make SIGTERM raise :class:`Terminated` in the main thread (once; later ones are logged).

    Returns:
        True if the handler was installed (only the main thread can install one).
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    _received.clear()  # a fresh command (tests call the CLI's main several times in one process)
    signal.signal(signal.SIGTERM, _on_sigterm)
    return True


def terminated() -> bool:
    """Whether this process has received SIGTERM since :func:`handle_sigterm` was installed."""
    return bool(_received)


def interrupt_reason(err: BaseException) -> str:
    """The reason to record for a trial stopped by ``err`` (a KeyboardInterrupt or SystemExit).

    Example:
        >>> interrupt_reason(KeyboardInterrupt())
        'interrupted by Ctrl-C or SIGINT (KeyboardInterrupt)'
    """
    if terminated() or isinstance(err, Terminated):
        return TERMINATED_REASON
    return f"interrupted by Ctrl-C or SIGINT ({type(err).__name__})"


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if _received:  # already stopping: let the clean-up finish (SIGKILL follows if it takes too long)
        log.warning("SIGTERM again: still closing the running trials")
        return
    _received.append(signum)
    log.warning("SIGTERM: closing the running trials as failed, then exiting")
    raise Terminated("terminated by SIGTERM")
