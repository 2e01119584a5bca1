"""The in-process dbt speed-ups change how fast dbt starts, never what it reports."""

from __future__ import annotations

import gc
import importlib
import importlib.util
import pkgutil
import weakref
from pathlib import Path

import pytest
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


def test_lineage_events_are_built_only_for_a_task_that_emits_assets():
    from cosmos.operators.local import AbstractDbtLocalBase

    # this project installs no OpenLineage provider: its listener cannot ask for them
    assert importlib.util.find_spec("airflow.providers.openlineage") is None
    dbt_process.skip_unread_lineage_events()
    assert dbt_process.skip_unread_lineage_events() is False  # idempotent

    class Built(Exception):
        pass

    def processor():  # what Cosmos calls first when it builds the events
        raise Built

    build = AbstractDbtLocalBase.calculate_openlineage_events_completes

    class Task:
        _get_dbt_local_artifact_processor = staticmethod(processor)

        def __init__(self, emit_datasets: bool) -> None:
            self.emit_datasets = emit_datasets

    assert build(Task(emit_datasets=False), {}, Path("unused")) is False
    with pytest.raises(Built):  # Cosmos' Assets are made from the events: still built
        build(Task(emit_datasets=True), {}, Path("unused"))


def test_dbt_lists_its_plugin_packages_once_with_the_same_answer(monkeypatch):
    from dbt.plugins.manager import PluginManager

    scans = []
    real_iter_modules = pkgutil.iter_modules

    def counting_iter_modules(*args, **kwargs):
        scans.append(1)
        return real_iter_modules(*args, **kwargs)

    monkeypatch.setattr(pkgutil, "iter_modules", counting_iter_modules)
    expected = {
        name: importlib.import_module(name)
        for _, name, _ in real_iter_modules()
        if name.startswith(PluginManager.PLUGIN_MODULE_PREFIX)
    }
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # a sys.path of its own: a fresh scan
    dbt_process.cache_plugin_discovery()
    assert dbt_process.cache_plugin_discovery() is False  # idempotent

    first = PluginManager.get_prefixed_modules()
    first.clear()  # a caller's change does not reach the next answer
    second = PluginManager.get_prefixed_modules()

    assert len(scans) == 1
    assert second == expected
    assert "dbt_common" in second


def test_the_partial_parse_file_reaches_a_task_s_project_as_dbt_wrote_it(tmp_path):
    import cosmos.cache
    import msgpack

    dbt_process.skip_root_path_rewrite()
    assert dbt_process.skip_root_path_rewrite() is False  # idempotent

    # saved by an earlier task, whose temporary project folder is gone
    cached = tmp_path / "cache" / "partial_parse.msgpack"
    cached.parent.mkdir()
    written = msgpack.packb({"nodes": {"model.retention.m": {"root_path": str(tmp_path / "gone")}}})
    cached.write_bytes(written)
    project = tmp_path / "task_project"
    project.mkdir()

    cosmos.cache._copy_partial_parse_to_project(cached, project)

    assert (project / "target" / "partial_parse.msgpack").read_bytes() == written
