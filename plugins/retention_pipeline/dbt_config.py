"""The one place that tells Cosmos (and the CLI) where dbt is and how it connects.

dbt reads its connection from ``dbt_project/profiles.yml``, which takes every value from
``RETENTION_DBT_*`` environment variables. Those are derived from the warehouse address
when a task starts (:func:`export_dbt_env`), so the embedded warehouse's socket path,
known only at run time, never has to be written anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retention_pipeline.config import get_settings

PROFILE_NAME = "retention"
TARGET_NAME = "warehouse"

# Global flags of every dbt invocation of a weekly DAG task. Each Cosmos task runs dbt in
# a throw-away copy of the project, and by default dbt writes its JSON artifacts there:
# the whole manifest twice (after parsing and again after the run), run_results.json and
# graph.gpickle, with Python's pure-Python JSON encoder. Nothing reads them (Cosmos hands
# the result object to its callbacks; the compiled SQL under target/compiled is still
# written and shown as the task's rendered SQL; OpenLineage, which would read them, has
# no provider installed here), and writing them was the largest part of each task's fixed
# cost: the 48 dbt tasks of a weekly run spent ~40 s outside dbt's own node timings.
# `retention dbt` and dbt-parse write the artifacts as usual (docs, the BI exposure list).
# For the same reason no logs/dbt.log: it is written, at debug level, into the copy and
# deleted with it (the task log gets dbt's console output, which this leaves alone); a
# whole `dbt build` of the project spends ~10% of its CPU writing it (9.4 -> 8.4 s).
# --cache-selected-only: dbt lists the relations of the selected node's schemas only,
# not of every schema the project uses, before each task (a relation elsewhere is looked
# up when asked for): populating that cache took 1.2-1.3 s of CPU in the 48 tasks of a
# weekly run, 0.7-1.0 s with the flag (py-spy, 3,000 customers).
DBT_TASK_GLOBAL_FLAGS = ["--no-write-json", "--log-level-file", "none", "--cache-selected-only"]


def manifest_path() -> Path:
    return get_settings().dbt_project_dir / "target" / "manifest.json"


def dbt_executable() -> str:
    beside_python = Path(sys.executable).parent / "dbt"
    return str(beside_python) if beside_python.exists() else (shutil.which("dbt") or "dbt")


def export_dbt_env(context: Any = None) -> dict[str, str]:
    """Put the warehouse address into the environment dbt's profile reads.

    Used as an ``on_execute_callback`` of the dbt tasks: it runs in the task's own
    process right before dbt, which Cosmos runs in-process (dbtRunner), so it also
    readies that process for dbt (:mod:`retention_pipeline.dbt_process`).
    """
    from retention_pipeline import dbt_process
    from retention_pipeline.warehouse import address

    if context is not None:
        dbt_process.prepare()

    env = address().dbt_env()
    os.environ.update(env)
    return env


def cosmos_configs() -> dict[str, Any]:
    """ProjectConfig, ProfileConfig, ExecutionConfig and RenderConfig for a DbtTaskGroup."""
    import cosmos  # noqa: F401  (import cosmos first: cosmos.constants alone hits a circular import)
    from cosmos import ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior

    settings = get_settings()
    project_dir = settings.dbt_project_dir
    manifest = manifest_path()
    project_config = ProjectConfig(
        dbt_project_path=project_dir,
        manifest_path=manifest,
        project_name="retention",
    )
    # Parse time: ProjectConfig wraps any manifest_path (str or Path) in an Airflow
    # ObjectStoragePath, and a file read through one is reported to Airflow's hook-lineage
    # collector, whose first use loads every installed Airflow plugin (Cosmos' own imports
    # FastAPI): ~0.3 s of each cold parse of retention_weekly. The manifest is a local file,
    # and ProjectConfig.manifest_path is typed ``Path | ObjectStoragePath``; Cosmos only
    # open()s, exists()es and str()s it, so a plain Path renders the same tasks without that.
    project_config.manifest_path = manifest
    return {
        "project_config": project_config,
        "profile_config": ProfileConfig(
            profile_name=PROFILE_NAME,
            target_name=TARGET_NAME,
            profiles_yml_filepath=project_dir / "profiles.yml",
        ),
        "execution_config": ExecutionConfig(
            execution_mode=ExecutionMode.LOCAL,
            invocation_mode=InvocationMode.DBT_RUNNER,
            dbt_executable_path=dbt_executable(),
        ),
        "render_config": RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            test_behavior=TestBehavior.BUILD,
            # Cosmos' own per-model Assets need a TCP host in the profile and fail on a
            # unix socket; the pipeline emits its own Assets instead.
            emit_datasets=False,
            # a test on several models runs after all of them, not after the first
            should_detach_multiple_parents_tests=True,
        ),
    }


def dbt_cli_args(args: list[str], *, vars_: dict[str, Any] | None = None) -> list[str]:
    """A dbt command's arguments with this project's project and profiles dirs and vars."""
    import json

    project = str(get_settings().dbt_project_dir)
    cli = [*args, "--project-dir", project, "--profiles-dir", project]
    if vars_:
        cli += ["--vars", json.dumps(vars_)]
    return cli


def run_dbt(args: list[str], *, vars_: dict[str, Any] | None = None) -> None:
    """Run a dbt command against the configured warehouse (the CLI and tests use it)."""
    settings = get_settings()
    env = {**os.environ}
    try:
        env.update(export_dbt_env())
    except Exception:
        env.update(
            {
                "RETENTION_DBT_HOST": "localhost",
                "RETENTION_DBT_USER": "postgres",
                "RETENTION_DBT_DBNAME": "retention",
            }
        )
    cmd = [dbt_executable(), *dbt_cli_args(args, vars_=vars_)]
    with kept_partial_parse(settings.dbt_project_dir / "target", env, cmd):
        subprocess.run(cmd, check=True, env=env, cwd=settings.dbt_project_dir)


# What dbt compares before it reuses target/partial_parse.msgpack: the profile's
# connection (profiles.yml takes it from these) and the --vars, --target and --profile
# of the invocation (dbt's own vars_hash). Any difference and dbt parses the whole project.
_CONNECTION_ENV = ("RETENTION_DBT_HOST", "RETENTION_DBT_PORT", "RETENTION_DBT_USER", "RETENTION_DBT_DBNAME")
_STATE_FLAGS = ("--vars", "--target", "-t", "--profile")


def kept_partial_parse_file(env: Mapping[str, str], args: Sequence[str] = ()) -> Path:
    """Where the partial-parse file of one connection and one set of vars is kept."""
    state: list[str] = [env.get(name, "") for name in _CONNECTION_ENV]
    for i, arg in enumerate(args):
        flag, _, inline = arg.partition("=")
        if flag in _STATE_FLAGS:
            state += [flag, inline or (args[i + 1] if i + 1 < len(args) else "")]
    key = hashlib.sha256(json.dumps(state).encode()).hexdigest()[:16]
    return get_settings().dbt_project_dir / "target" / "partial_parse" / f"{key}.msgpack"


@dataclass
class DbtInvocation:
    """What ``kept_partial_parse`` is told of its invocation: an exception out of the
    block says it failed; a caller whose dbt reports failure otherwise sets ``failed``."""

    failed: bool = False


@contextmanager
def kept_partial_parse(
    target: Path, env: Mapping[str, str], args: Sequence[str] = (), *, seed: Path | None = None
) -> Iterator[DbtInvocation]:
    """Give one dbt invocation writing to ``target`` the partial-parse file of its
    connection and vars, and keep the file it leaves for the next one like it.

    dbt keeps a single target/partial_parse.msgpack and throws it away when the vars or
    the connection differ from the last invocation's: a full parse, ~3 s on this project
    (a small build's models take less). Alternating weeks (as_of) or warehouses, as a
    hand backfill, the weekly freshness check after a build, or the test suite do, paid
    that every time. Each pair keeps its own copy under the project's
    target/partial_parse/; dbt still checks every file's hash against it, so a copy
    older than an edit costs a parse of what changed, not a wrong manifest. A project
    folder that cannot be written (an image's) only loses the reuse (``seed`` is then
    the starting point, as before).
    """
    live = target / "partial_parse.msgpack"
    kept = kept_partial_parse_file(env, args)
    start = kept if kept.exists() else seed
    if start is not None and start != live and start.exists():
        shutil.copy2(start, live)
    before = _file_state(live)
    invocation = DbtInvocation()
    try:
        yield invocation
    except BaseException:
        invocation.failed = True
        raise
    finally:
        # A failed invocation may have stopped before dbt parsed (a bad profile or
        # target): the file then is the one put there before, maybe another pair's,
        # and is kept only if dbt wrote it, i.e. parsed with this pair. After a
        # success an untouched file is the one dbt reused (it rewrites it only when
        # it parsed something): this pair's either way.
        if not invocation.failed or _file_state(live) != before:
            _keep(live, kept)


def _file_state(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _keep(live: Path, kept: Path) -> None:
    if not live.exists():
        return
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        writing = kept.with_name(f"{kept.name}.{os.getpid()}")
        shutil.copy2(live, writing)
        os.replace(writing, kept)  # another process reading it sees a whole file
    except OSError:
        pass


def ensure_manifest(force: bool = False) -> Path:
    """Cosmos renders the DAG from a prebuilt manifest: build it if missing or stale."""
    path = manifest_path()
    project = get_settings().dbt_project_dir
    sources = [
        p
        for p in project.rglob("*")
        if p.suffix in (".sql", ".yml", ".csv", ".md") and "target" not in p.parts and "logs" not in p.parts
    ]
    newest = max((p.stat().st_mtime for p in sources), default=0.0)
    if force or not path.exists() or path.stat().st_mtime < newest:
        run_dbt(["parse", "--quiet"])
    return path
