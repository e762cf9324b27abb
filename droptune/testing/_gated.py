"""A tiny model whose training a test holds at a moment it chooses (a server frozen, a long epoch)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from typing_extensions import override

from droptune.exceptions import ConfigError
from droptune.testing._tiny import TinyModule


class GatedTinyModule(TinyModule):
    """:class:`TinyModule` whose epoch ``epoch`` first waits for a file, then runs slowly if asked.

    At the first training batch of that epoch (not in the pre-flight's one-batch fit; in the first trial to get there: the ``ready``
    file is made once), it creates ``ready`` (the test knows training now waits), then waits
    until ``gate`` exists, at most ``deadline`` seconds (then it raises: a test that never opens
    the gate fails rather than hangs). Each batch of that epoch then takes at least ``pace``
    seconds, standing for a long epoch's work.

    Args:
        gate: The file that lets training go on (made by the test).
        ready: The file this module creates when it starts waiting.
        epoch: The epoch that waits (default 0).
        pace: Seconds each batch of that epoch takes at least (default 0).
        deadline: The longest wait for ``gate``, in seconds (default 300).
        **kwargs: :class:`TinyModule`'s arguments.

    Raises:
        ConfigError: If ``pace`` or ``deadline`` is negative.

    Example:
        >>> model = GatedTinyModule(gate="go", ready="waiting", pace=0.5)
        >>> model.pace, model.epoch
        (0.5, 0)
    """

    def __init__(self, *, gate: str, ready: str, epoch: int = 0, pace: float = 0.0, deadline: float = 300.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if pace < 0 or deadline < 0:
            raise ConfigError(f"pace and deadline must be seconds >= 0; got pace={pace!r}, deadline={deadline!r}.")
        self.gate, self.ready, self.epoch = gate, ready, epoch
        self.pace, self.deadline = pace, deadline

    @override
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Not in droptune's one-batch pre-flight (Lightning sets fast_dev_run in __init__, untyped).
        if self.current_epoch != self.epoch or getattr(self.trainer, "fast_dev_run", False):
            return
        ready = Path(self.ready)
        if batch_idx == 0 and not ready.exists():
            ready.touch()
            end = time.monotonic() + self.deadline
            while not Path(self.gate).exists():
                if time.monotonic() > end:
                    raise TimeoutError(f"{self.gate} was not created within {self.deadline:g} s")
                time.sleep(0.05)  # the model's own wait for the test, not a test's synchronisation
        if self.pace:
            time.sleep(self.pace)  # stands for a batch's work
