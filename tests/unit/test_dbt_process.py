"""The in-process dbt speed-ups change how fast dbt starts, never what it reports."""

from __future__ import annotations

import gc
import weakref

from dbt_common.behavior_flags import BehaviorFlagRendered

from retention_pipeline import dbt_process


def _register_flag() -> BehaviorFlagRendered:
    return BehaviorFlagRendered({"name": "some_flag", "default": False, "description": "d"}, {})


def test_a_flag_still_names_the_module_that_registered_it():
    dbt_process.patch_behavior_flag_source()
    assert dbt_process.patch_behavior_flag_source() is False  # idempotent
    assert BehaviorFlagRendered._default_source is not dbt_process.original_default_source

    flag = _register_flag()

    assert flag._behavior_change_event.flag_source == __name__
    # dbt_common's own inspect-based lookup gives the same answer from the same place
    original = dbt_process.original_default_source
    assert original is not None

    def like_dbt_common():  # a frame of this module, as the flag's __init__ would be
        return original()

    assert like_dbt_common() == dbt_process._calling_module_name() == __name__


def test_after_freezing_the_heap_a_task_s_own_garbage_cycles_are_still_collected():
    try:
        dbt_process.freeze_long_lived_objects()
        assert gc.get_freeze_count() > 0

        class Node:
            pass

        a, b = Node(), Node()
        a.other, b.other = b, a  # a reference cycle only the cycle collector can free
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()
