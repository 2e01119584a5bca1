"""Make one process that runs many in-process dbt invocations pay for dbt's work only.

Cosmos runs dbt in the task's own process (``dbtRunner``). When one process runs many
dbt tasks, as ``dag.test`` does (``retention run``, the demo, the end-to-end tests and
the benchmark run every task of a DAG run in one process), two costs outside dbt grew
with the size of the process and took most of each small task's time. A cProfile of
a weekly run on the demo data (``python -m cProfile -m retention_pipeline.cli run
--week 2026-W48 --skip-ingest``) put them at 52% and 10% of the run:

* ``dbt_common.behavior_flags.BehaviorFlagRendered`` names the module that registered a
  flag with ``inspect.stack()``, evaluated even when the flag names its source. That
  builds a frame record, with source lines, for every frame of the (deep) Airflow call
  stack, and ``inspect.getmodule`` scans all of ``sys.modules`` (~4,000 modules in a
  task process) for each one; dbt-postgres registers 27 flags per invocation. The
  replacement walks the same frames and reads the module name each frame's code runs
  in, which is what ``inspect.getmodule`` answers for module-level code, without the
  scan and without reading source files.
* Cosmos ends every dbt invocation with a full ``gc.collect()`` (to release the
  adapters' semaphores). A full collection traverses every tracked object of the
  process, and in a process that has imported Airflow, Cosmos, dbt and GX that is
  several hundred thousand objects that will live as long as the process.
  :func:`freeze_long_lived_objects` moves the objects alive before the task into the
  permanent generation (``gc.freeze()``, meant for exactly this), so the collection
  after the task only looks at what the task allocated. Garbage cycles created by the
  task itself are still collected.

Measured on the demo data (3,000 customers, ``retention run --week 2026-W48
--skip-ingest``, 48 dbt tasks): the dbt tasks took 77.5 s in all and the weekly run
98 s; with both changes 46.5 s and 66 s. Either one alone gained little or nothing
(the frozen heap is what makes the frame walk's savings show).

Two smaller per-invocation costs went the same way later. A py-spy profile of a weekly
run on 3,000 customers (``retention run --week 2026-W49 --skip-ingest``) put 11.7 s of
CPU in the 48 Cosmos tasks, of which:

* 1.0 s in Cosmos turning each task's dbt artifacts into OpenLineage events (it loads
  ``manifest.json`` and the profile again). On Airflow 3 only two things read those
  events: the OpenLineage provider's listener and Cosmos' own per-model Assets
  (``emit_datasets``). This project installs no such provider and turns those Assets off
  (it emits its own), so the events were built and dropped.
  :func:`skip_unread_lineage_events` skips them for tasks that do not emit Assets, and
  only when ``airflow.providers.openlineage`` is not installed.
* 0.7 s in dbt looking for ``dbt_*`` plugin packages, by listing every folder of
  ``sys.path`` (``PluginManager.get_prefixed_modules``), once per invocation.
  :func:`cache_plugin_discovery` keeps the answer per ``sys.path``.
* 1.0 s in Cosmos rewriting the partial-parse file it copies into each task's
  temporary project (``cosmos.cache.patch_partial_parse_content``): it unpacks the
  whole file, and because the file was saved by an earlier task whose temporary folder
  is gone, it finds that folder missing every time and packs and writes the file again
  with the new one. Cosmos does this for dbt 1.5 and 1.6 releases that looked files up
  under that stale folder; dbt 1.7 and later do not read it to find files.
  :func:`skip_root_path_rewrite` skips it on those.

All are process-local and idempotent, and none changes what dbt computes: the
source name only appears in dbt's behaviour-change log events.
"""

from __future__ import annotations

import functools
import gc
import importlib.util
import sys
from typing import Any

# dbt_common's own lookup once patched (None before): a test checks the replacement
# gives its answer
original_default_source = None


def _calling_module_name() -> str:
    """The module of the nearest frame outside ``dbt_common.behavior_flags``."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__")
        if name and name != "dbt_common.behavior_flags":
            return str(name)
        frame = frame.f_back  # type: ignore[assignment]
    return "Unknown"


def patch_behavior_flag_source() -> bool:
    """Replace the flag-source lookup with a frame walk; True if this call patched it."""
    global original_default_source
    if original_default_source is not None:
        return False
    try:
        from dbt_common.behavior_flags import BehaviorFlagRendered
    except ImportError:  # dbt not installed in this process: nothing to speed up
        return False
    original_default_source = BehaviorFlagRendered._default_source
    BehaviorFlagRendered._default_source = staticmethod(_calling_module_name)  # type: ignore[method-assign]
    return True


def freeze_long_lived_objects() -> None:
    """Collect what is garbage now, then exempt the survivors from later collections."""
    gc.collect()
    gc.freeze()


# set on each replacement below, so a second call sees the patch is in place
_PATCHED = "_retention_patched"


def _already_patched(current: Any) -> bool:
    return bool(getattr(current, _PATCHED, False))


def _marked(replacement: Any) -> Any:
    setattr(replacement, _PATCHED, True)
    return replacement


def skip_unread_lineage_events() -> bool:
    """Skip Cosmos' OpenLineage events where nothing reads them; True if this call patched.

    Nothing reads them without the OpenLineage provider, unless the task emits Cosmos'
    own Assets (which are made from them): such a task still builds them.
    """
    if importlib.util.find_spec("airflow.providers.openlineage") is not None:
        return False  # the provider's listener asks each task for its lineage
    try:
        from cosmos.operators.local import AbstractDbtLocalBase
    except ImportError:
        return False
    build_events = AbstractDbtLocalBase.calculate_openlineage_events_completes
    if _already_patched(build_events):
        return False

    @_marked
    @functools.wraps(build_events)
    def only_when_read(self: Any, *args: Any, **kwargs: Any) -> bool:
        if getattr(self, "emit_datasets", False):
            return bool(build_events(self, *args, **kwargs))
        return False  # Cosmos' answer for "no lineage processor": nothing else changes

    AbstractDbtLocalBase.calculate_openlineage_events_completes = only_when_read
    return True


def cache_plugin_discovery() -> bool:
    """Let dbt list its plugin packages once per ``sys.path``; True if this call patched."""
    try:
        from dbt.plugins.manager import PluginManager
    except ImportError:
        return False
    discover = PluginManager.get_prefixed_modules
    if _already_patched(discover):
        return False
    scan = discover.__func__  # type: ignore[attr-defined]

    @functools.cache
    def modules_for(cls: type, path: tuple[str, ...]) -> dict[str, Any]:
        return dict(scan(cls))

    @_marked
    def get_prefixed_modules(cls: type) -> dict[str, Any]:
        return dict(modules_for(cls, tuple(sys.path)))  # a copy: callers may not change the cache

    PluginManager.get_prefixed_modules = classmethod(get_prefixed_modules)  # type: ignore[method-assign,assignment]
    return True


def skip_root_path_rewrite() -> bool:
    """Leave the partial-parse file's project folder as dbt wrote it, on dbt 1.7 and
    later; True if this call patched."""
    try:
        import cosmos.cache
        from dbt.version import __version__ as dbt_version
    except ImportError:
        return False
    major, minor = (int(part) for part in dbt_version.split(".")[:2])
    rewrite = cosmos.cache.patch_partial_parse_content
    if (major, minor) < (1, 7) or _already_patched(rewrite):
        return False

    @_marked
    def left_as_written(partial_parse_filepath: Any, project_path: Any) -> bool:
        return False  # Cosmos' answer for "nothing to patch"

    cosmos.cache.patch_partial_parse_content = left_as_written
    return True


def prepare() -> None:
    """Called in the task's process right before Cosmos runs dbt."""
    patch_behavior_flag_source()
    skip_unread_lineage_events()
    cache_plugin_discovery()
    skip_root_path_rewrite()
    freeze_long_lived_objects()
