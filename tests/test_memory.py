"""droptune._memory: the collection after each trial walks only what the study created."""

from __future__ import annotations

import gc
import weakref

from droptune._memory import hold_startup_objects, let_go_startup_objects, release_trial_memory


class Node:
    """An object in a reference cycle: only the cycle collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_objects_alive_at_the_start_are_held_until_the_last_executor_lets_go() -> None:
    assert gc.get_freeze_count() == 0
    hold_startup_objects()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    # Frozen objects still die by reference count (another test's thread ending, say), so the
    # count may shrink a little; what must not happen is a second freeze taking in new objects.
    fresh = [Node() for _ in range(1000)]
    hold_startup_objects()  # a second executor in the same process: nothing more is frozen
    assert gc.get_freeze_count() < frozen + len(fresh)
    let_go_startup_objects()
    assert gc.get_freeze_count() > 0  # one hold is left: still frozen
    let_go_startup_objects()
    assert gc.get_freeze_count() == 0
    let_go_startup_objects()  # unmatched: nothing to undo
    assert gc.get_freeze_count() == 0


def test_a_trials_cycles_are_still_freed_while_the_startup_objects_are_held() -> None:
    hold_startup_objects()
    try:
        trial_object = Node()
        ref = weakref.ref(trial_object)
        del trial_object
        release_trial_memory()
        assert ref() is None
    finally:
        let_go_startup_objects()


def test_garbage_from_before_the_start_is_freed_once_let_go() -> None:
    old = Node()
    ref = weakref.ref(old)
    del old
    hold_startup_objects()
    let_go_startup_objects()
    gc.collect()
    assert ref() is None
