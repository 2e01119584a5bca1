"""Pipeline benchmark: the real ingest and weekly DAGs at three scales, from one run.

    .venv/bin/python bench/pipeline_bench.py        # BENCH_CUSTOMERS=1800000, ~10M orders at scale 1
    BENCH_CUSTOMERS=6000 BENCH_SCALES=0.1,0.5,1 BENCH_OUT=/tmp/pb.json .venv/bin/python bench/pipeline_bench.py
    make bench                                      # bench/ingest_bench.py first, then this

Settings (environment):

* ``BENCH_CUSTOMERS``: customers at the largest scale (default 1,800,000: the generator
  gives about 5.6 orders, 0.3 tickets and 0.3 survey answers per customer, so ~10M orders);
* ``BENCH_SCALES``: fractions of it, one run each (default ``0.01,0.1,1``);
* ``BENCH_TO_SQL_ROWS``: rows of the orders file given to ``pandas.to_sql`` (default
  1,000,000; to_sql holds the whole frame in memory, so it is capped and says so);
* ``BENCH_TICKET_RATE``: tickets per customer relative to the sample data's default
  (default 1.5: about 0.6 per customer, so 1.1M tickets at scale 1);
* ``BENCH_SEED`` (default 7), ``BENCH_END`` (the exclusive end of the data, a Monday;
  default this week's Monday);
* ``BENCH_OUT``: the JSON file (default ``bench_results.json``). bench/ingest_bench.py
  writes the same file first; this script reads it and sets only its own top-level key
  ``pipeline``, so one file holds both and neither overwrites the other's figures;
* ``BENCH_KEEP=1``: keep each scale's temporary ``RETENTION_HOME`` (landing files, DAG
  logs, outbox, PostgreSQL data dir) instead of deleting it.

Each scale runs in its own temporary ``RETENTION_HOME`` (so the project's ``.retention``
and its warehouse are never touched) with its own embedded PostgreSQL, started there and
stopped at the end; with ``RETENTION_WAREHOUSE_URL`` set, a scratch database on that
server instead, dropped at the end. Every step is its own child process, so each peak
resident memory (``VmHWM``) is that step's own (the PostgreSQL server's memory is not in
it):

1. ``generate``: ``sample_data.generate`` (vectorised, straight to CSV) with ``end`` = a
   Monday and ``daily_from`` = the Monday before: all history in one file per entity,
   the last ISO week as daily files;
2. ``pipeline``: the real DAGs through ``dag.test``, exactly as ``retention demo`` /
   ``retention run`` run them (``cli._run_dag``; no SMTP connection, so the digest goes
   to the outbox only, and the call list goes to the default ``csv,xlsx`` file sinks):

   * the ingest DAG for the interval [Sunday, Monday) in which the history files become
     available (one run loads the whole history);
   * the weekly DAG for the week before the last: the FULL build, marts from scratch;
   * the ingest DAG for each day of the last week, then the weekly DAG for the last week:
     the INCREMENTAL week, one week of new data on top of the full history;

   after each DAG run its task instances are read back from Airflow's metadata database
   and grouped into stages (weekly: sources, prepare, dbt per model, gates, publish,
   digest, push; ingest: land, validate, publish per entity);
3. ``copy``: one ``COPY ... FROM STDIN`` per history file, into typed tables of a scratch
   database on the same server (the floor: what the server can take);
4. ``to_sql`` (largest scale only): ``pandas.read_csv`` + ``DataFrame.to_sql`` at its
   defaults on the first ``BENCH_TO_SQL_ROWS`` rows of the orders history file.

Before the scales, each DAG file's parse time is measured in fresh processes with the
project's Airflow environment, as Airflow's DAG processor parses it (see
``_child_parse``, the manager's pre-import of the file's ``airflow.*`` modules included
and timed apart): cold and then warm, median of 3 processes, next to the file's import
in a bare interpreter.

JSON keys under ``pipeline``: ``ingest`` (rows/s of the ingest DAG next to COPY and
to_sql, as ratios), ``weekly_stages`` (wall time by stage, dbt by model, full and
incremental), ``peak_memory_mb``, ``incremental_vs_full``, ``per_row_by_scale`` (with
``cost_fit``: seconds = fixed + marginal x rows over the scales), ``dag_parse_seconds``,
``generate``, ``targets``, ``machine``, ``settings`` and ``measured_at``. A short table
goes to stdout. Runs at the default scale take long (the full weekly target alone allows
15 minutes); try ``BENCH_CUSTOMERS=6000 BENCH_SCALES=0.1,0.5,1`` first.
"""

from __future__ import annotations

import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
sys.path.insert(0, str(ROOT / "bench"))

from ingest_bench import _database, _drop, _peak_rss_mb  # noqa: E402

# Variables that would point a child at somebody else's Airflow, landing folder, outbox,
# source systems or alert channels: removed, so every run is the demo's setup.
_STRIPPED_ENV = (
    "AIRFLOW_HOME",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC",
    "AIRFLOW__LOGGING__BASE_LOG_FOLDER",
    "RETENTION_LANDING_DIR",
    "RETENTION_OUTBOX_DIR",
    "RETENTION_SOURCES_FILE",
    "RETENTION_ALERT_RECIPIENTS",
    "RETENTION_ALERT_WEBHOOK_URL",
    "RETENTION_OUTREACH_SINKS",
    "RETENTION_OUTREACH_DRY_RUN",
)
TARGETS = {
    "ingest_vs_copy_min": 0.5,
    "ingest_vs_to_sql_min": 10.0,
    "full_weekly_max_seconds": 15 * 60,  # at 1M customers / 10M orders
    "incremental_vs_full_max": 0.25,
    "dag_parse_max_seconds": 0.5,
}


# --- small helpers ----------------------------------------------------------------------


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, "").replace("_", "") or default)


def _mb(path: Path) -> float:
    return path.stat().st_size / 2**20


def _memory_mb() -> float | None:
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024
    return None


def _this_monday() -> date:
    today = date.today()
    return today - timedelta(days=today.weekday())


def _base_env() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in _STRIPPED_ENV and not k.startswith("AIRFLOW_CONN_")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "plugins"), env.get("PYTHONPATH", "")]))
    return env


def _spawn(kind: str, args: dict[str, Any], env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run ``kind`` in a child process (output to ``log``); returns what it wrote."""
    result_path = log.with_suffix(".json")
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, __file__, "--child", kind, json.dumps(args), str(result_path)]
    with log.open("wb") as sink:
        code = subprocess.run(command, env=env, stdout=sink, stderr=subprocess.STDOUT, check=False).returncode
    if code != 0 or not result_path.exists():
        text = log.read_text(errors="replace")
        errors = [line for line in text.splitlines() if "ERROR" in line or "Error" in line][-30:]
        raise RuntimeError(
            f"the {kind} step failed (exit {code}); see {log}. Error lines:\n"
            + "\n".join(errors)
            + f"\nThe end of the log:\n{text[-3000:]}"
        )
    result: dict[str, Any] = json.loads(result_path.read_text())
    return result


# --- child: generate ----------------------------------------------------------------------


def _child_generate(args: dict[str, Any]) -> dict[str, Any]:
    from retention_pipeline.config import get_settings
    from retention_pipeline.sample_data import generate

    landing = get_settings().landing_dir
    t0 = time.perf_counter()
    counts = generate(
        landing,
        end=date.fromisoformat(args["end"]),
        seed=args["seed"],
        customers=args["customers"],
        daily_from=date.fromisoformat(args["daily_from"]),
        ticket_rate=args["ticket_rate"],
    )
    seconds = time.perf_counter() - t0
    files = {name: sorted((landing / name).glob("*.csv")) for name in counts}
    customers = max(counts.get("customers", 0), 1)
    return {
        "seconds": seconds,
        "rows": counts,
        "rows_total": sum(counts.values()),
        "rows_per_second": sum(counts.values()) / seconds,
        "per_customer": {name: rows / customers for name, rows in counts.items() if name != "customers"},
        "files": {name: len(paths) for name, paths in files.items()},
        "mib": {name: round(sum(_mb(p) for p in paths), 2) for name, paths in files.items()},
        "peak_rss_mb": _peak_rss_mb(),
    }


# --- child: pipeline ------------------------------------------------------------------------


WEEKLY_STAGES = ("sources", "prepare", "dbt", "gates", "publish", "digest", "push")
_WEEKLY_TASK_STAGE = {
    "check_sources": "sources",
    "prepare_marts_build": "prepare",
    "gate_marts": "gates",
    "publish_marts": "publish",
    "send_digest": "digest",
    "push_call_list": "push",
}


def _dbt_node(task_id: str) -> str:
    """``dbt.dim_customers_model_build`` -> ``dim_customers``; seeds and stand-alone tests
    keep a prefix (``seed:offers``, ``test:assert_...``)."""
    name = task_id.removeprefix("dbt.")
    for suffix, prefix in (("_model_build", ""), ("_seed_build", "seed:"), ("_test", "test:")):
        if name.endswith(suffix):
            return prefix + name.removesuffix(suffix)
    return name


def _read_dag_run(dag_id: str) -> dict[str, Any]:
    """The newest run of ``dag_id`` and its task instances, from Airflow's metadata DB."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalars(
            select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(1)
        ).one()
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id)
        ).all()
        tasks = []
        for ti in tis:
            duration = ti.duration
            if duration is None and ti.start_date and ti.end_date:
                duration = (ti.end_date - ti.start_date).total_seconds()
            tasks.append(
                {
                    "task_id": ti.task_id,
                    "state": str(ti.state),
                    "start": ti.start_date.isoformat() if ti.start_date else None,
                    "end": ti.end_date.isoformat() if ti.end_date else None,
                    "seconds": float(duration or 0.0),
                    "try_number": ti.try_number,
                }
            )
        return {
            "run_id": run.run_id,
            "state": str(run.state),
            "data_interval_start": str(run.data_interval_start),
            "data_interval_end": str(run.data_interval_end),
            "tasks": sorted(tasks, key=lambda t: t["start"] or ""),
        }


def _span(tasks: list[dict[str, Any]]) -> float:
    starts = [datetime.fromisoformat(t["start"]) for t in tasks if t["start"]]
    ends = [datetime.fromisoformat(t["end"]) for t in tasks if t["end"]]
    return (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0


def _weekly_breakdown(run: dict[str, Any], wall: float) -> dict[str, Any]:
    stages = dict.fromkeys(WEEKLY_STAGES, 0.0)
    dbt_nodes: dict[str, float] = {}
    for task in run["tasks"]:
        if task["task_id"].startswith("dbt."):
            stages["dbt"] += task["seconds"]
            dbt_nodes[_dbt_node(task["task_id"])] = task["seconds"]
        else:
            stage = _WEEKLY_TASK_STAGE.get(task["task_id"], "other")
            stages[stage] = stages.get(stage, 0.0) + task["seconds"]
    dbt_tasks = [t for t in run["tasks"] if t["task_id"].startswith("dbt.")]
    tasks_total = sum(stages.values())
    return {
        "wall_seconds": wall,
        "stages_seconds": stages,
        "airflow_overhead_seconds": max(0.0, wall - tasks_total),
        "dbt_total_seconds": stages["dbt"],
        "dbt_wall_seconds": _span(dbt_tasks),
        "dbt_models_seconds": dict(sorted(dbt_nodes.items(), key=lambda kv: -kv[1])),
        "tasks": run["tasks"],
    }


def _ingest_breakdown(run: dict[str, Any], wall: float, batches: dict[str, dict[str, int]]) -> dict[str, Any]:
    per_entity: dict[str, dict[str, Any]] = {}
    for task in run["tasks"]:
        step, _, entity = task["task_id"].partition("_")
        entry = per_entity.setdefault(entity, {"land": 0.0, "validate": 0.0, "publish": 0.0})
        entry[step] = entry.get(step, 0.0) + task["seconds"]
    for entity, entry in per_entity.items():
        entry.update(batches.get(entity, {"rows_read": 0, "rows_loaded": 0, "rows_quarantined": 0}))
        entry["tasks_seconds"] = entry["land"] + entry["validate"] + entry["publish"]
        entry["rows_per_second"] = entry["rows_read"] / entry["tasks_seconds"] if entry["rows_read"] else 0.0
    rows = sum(e["rows_read"] for e in per_entity.values())
    tasks_seconds = sum(e["tasks_seconds"] for e in per_entity.values())
    return {
        "wall_seconds": wall,
        "rows_read": rows,
        "rows_per_second": rows / wall if wall else 0.0,
        "tasks_seconds": tasks_seconds,
        "tasks_rows_per_second": rows / tasks_seconds if tasks_seconds else 0.0,
        "airflow_overhead_seconds": max(0.0, wall - tasks_seconds),
        "entities": per_entity,
    }


def _batches_of(interval_start: datetime) -> tuple[dict[str, dict[str, int]], list[list[str]]]:
    """Rows per entity the ingest run of that interval read, and the files it loaded."""
    from retention_pipeline import warehouse

    with warehouse.connect() as conn:
        rows = conn.execute(
            """select entity, coalesce(sum(rows_read), 0), coalesce(sum(rows_loaded), 0),
                      coalesce(sum(rows_quarantined), 0), string_agg(distinct status, ',')
               from ops.load_batches where interval_start = %s group by entity""",
            (interval_start,),
        ).fetchall()
        files = conn.execute(
            """select b.entity, f.file_name from ops.loaded_files f
               join ops.load_batches b using (batch_id)
               where b.interval_start = %s order by 1, 2""",
            (interval_start,),
        ).fetchall()
    batches = {
        entity: {"rows_read": int(r), "rows_loaded": int(ok), "rows_quarantined": int(q), "status": status}
        for entity, r, ok, q, status in rows
    }
    return batches, [[entity, name] for entity, name in files]


def _child_pipeline(args: dict[str, Any]) -> dict[str, Any]:
    from retention_pipeline import cli, warehouse
    from retention_pipeline.config import PROJECT_ROOT, get_settings
    from retention_pipeline.dbt_config import ensure_manifest
    from retention_pipeline.weeks import days_of_week, iso_week_of, week_interval

    settings = get_settings()
    tz = settings.timezone
    daily_from = date.fromisoformat(args["daily_from"])
    last_start = datetime.combine(daily_from, datetime.min.time(), ZoneInfo(tz))
    incremental_week = iso_week_of(last_start, tz)
    full_week = iso_week_of(last_start - timedelta(days=7), tz)
    history_start = last_start - timedelta(days=1)  # the day the history files are named after

    setup: dict[str, float] = {}
    t0 = time.perf_counter()
    cli._ensure_warehouse()
    setup["warehouse_start"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cli._prepare_airflow()
    setup["airflow_db_migrate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ensure_manifest()
    from airflow.dag_processing.dagbag import DagBag

    with cli._output_to(settings.home / "logs" / "dagbag.log"):
        bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    setup["dagbag"] = time.perf_counter() - t0

    memory: dict[str, float] = {"setup": _peak_rss_mb()}

    def run(dag_id: str, run_after: datetime, expect_start: datetime) -> tuple[dict[str, Any], float]:
        started = time.perf_counter()
        cli._run_dag(bag, dag_id, run_after, expect_start)
        wall = time.perf_counter() - started
        dag_run = _read_dag_run(dag_id)
        return dag_run, wall

    # 1. the whole history in one ingest run
    history_run, wall = run("retention_ingest", last_start, history_start)
    batches, history_files = _batches_of(history_start)
    history = _ingest_breakdown(history_run, wall, batches)
    memory["history_ingest"] = _peak_rss_mb()

    # 2. the full build: the weekly DAG for the week before the last, marts from scratch
    start, end = week_interval(full_week, tz)
    full_run, wall = run("retention_weekly", end, start)
    full = _weekly_breakdown(full_run, wall)
    memory["full_weekly"] = _peak_rss_mb()

    # 3. the incremental week: its days' ingest, then its weekly run
    daily = []
    for day in days_of_week(incremental_week, tz):
        day_run, wall = run("retention_ingest", day + timedelta(days=1), day)
        daily.append({"day": day.date().isoformat(), **_ingest_breakdown(day_run, wall, _batches_of(day)[0])})
    memory["incremental_ingest"] = _peak_rss_mb()
    start, end = week_interval(incremental_week, tz)
    incremental_run, wall = run("retention_weekly", end, start)
    incremental = _weekly_breakdown(incremental_run, wall)
    memory["incremental_weekly"] = _peak_rss_mb()

    with warehouse.connect() as conn:
        version = warehouse.scalar(conn, "show server_version")
        size = warehouse.scalar(conn, "select pg_database_size(current_database())")
        orders_in_raw = warehouse.scalar(conn, "select count(*) from raw.orders")
    daily_rows = sum(d["rows_read"] for d in daily)
    daily_wall = sum(d["wall_seconds"] for d in daily)
    return {
        "weeks": {"full": full_week, "incremental": incremental_week},
        "setup_seconds": setup,
        "history_ingest": history,
        "history_files": history_files,
        "full_weekly": full,
        "incremental_ingest": {
            "wall_seconds": daily_wall,
            "rows_read": daily_rows,
            "rows_per_second": daily_rows / daily_wall if daily_wall else 0.0,
            "days": daily,
        },
        "incremental_weekly": incremental,
        "orders_in_raw": orders_in_raw,
        "postgresql_version": version,
        "warehouse_mib": size / 2**20,
        "peak_rss_mb": _peak_rss_mb(),
        "peak_rss_mb_after": memory,
        "outbox": sorted(
            str(p.relative_to(settings.outbox_dir))
            for p in settings.outbox_dir.rglob("*")
            if p.is_file() and "data_docs" not in p.parts
        ),
    }


# --- children: COPY and to_sql of the same files ----------------------------------------------


def _child_copy(args: dict[str, Any]) -> dict[str, Any]:
    from retention_pipeline import warehouse
    from retention_pipeline.config import get_settings
    from retention_pipeline.entities import ENTITIES

    landing = get_settings().landing_dir
    per_entity: dict[str, dict[str, Any]] = {}
    with warehouse.connect() as conn:
        server = int(warehouse.scalar(conn, "show server_version_num"))
        # the history files hold no bad rows (the generator appends them to the newest
        # file); on PostgreSQL 17+ a stray one is skipped rather than failing the floor
        options = "format csv, header true" + (", on_error ignore" if server >= 170000 else "")
        for entity_name, file_name in args["files"]:
            entity = ENTITIES[entity_name]
            table = f"copy_{entity_name}"
            columns = ", ".join(f"{c.name} {c.sql_type}" for c in entity.columns)
            conn.execute(f"create table if not exists {table} ({columns})")
            conn.commit()
            path = landing / entity_name / file_name
            with path.open("rb") as fh:
                header = fh.readline().decode("utf-8-sig").strip()
            t0 = time.perf_counter()
            with (
                conn.cursor().copy(f"copy {table} ({header}) from stdin with ({options})") as copy,
                path.open("rb") as fh,
            ):
                while block := fh.read(1 << 20):
                    copy.write(block)
            conn.commit()
            seconds = time.perf_counter() - t0
            entry = per_entity.setdefault(entity_name, {"seconds": 0.0, "files": 0, "mib": 0.0})
            entry["seconds"] += seconds
            entry["files"] += 1
            entry["mib"] += _mb(path)
        for entity_name, entry in per_entity.items():
            entry["rows"] = warehouse.scalar(conn, f"select count(*) from copy_{entity_name}")
            entry["rows_per_second"] = entry["rows"] / entry["seconds"]
    rows = sum(e["rows"] for e in per_entity.values())
    seconds = sum(e["seconds"] for e in per_entity.values())
    return {
        "seconds": seconds,
        "rows": rows,
        "rows_per_second": rows / seconds,
        "options": options,
        "entities": per_entity,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _child_to_sql(args: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd

    from retention_pipeline import warehouse
    from retention_pipeline.config import get_settings

    path = get_settings().landing_dir / "orders" / args["file"]
    engine = warehouse.engine()
    t0 = time.perf_counter()
    frame = pd.read_csv(path, nrows=args["cap"])
    t1 = time.perf_counter()
    frame.to_sql("bench_to_sql", engine)  # the defaults: INSERT ... VALUES, executemany
    t2 = time.perf_counter()
    with warehouse.connect() as conn:
        rows = warehouse.scalar(conn, "select count(*) from bench_to_sql")
    engine.dispose()
    with path.open("rb") as fh:
        file_rows = sum(1 for _ in fh) - 1
    return {
        "seconds": t2 - t0,
        "read_csv_seconds": t1 - t0,
        "to_sql_seconds": t2 - t1,
        "rows": rows,
        "rows_per_second": rows / (t2 - t0),
        "file": args["file"],
        "file_rows": file_rows,
        "capped": rows < file_rows,
        "cap": args["cap"],
        "peak_rss_mb": _peak_rss_mb(),
    }


# --- child: DAG parse time ---------------------------------------------------------------------


def _child_parse(args: dict[str, Any]) -> dict[str, Any]:
    """Parse one DAG file the way Airflow's DAG processor does, and time it.

    The processor's parsing process is forked from the DAG processor manager, so what
    the manager has imported (``airflow.dag_processing.processor``: Airflow's models and
    every installed plugin, Cosmos' among them) is loaded before any DAG file; each file
    is then read by a ``BundleDagBag`` (``load_op_links=False``), whose own per-file
    ``duration`` is the figure ``airflow dags report`` and the processor's
    ``dag_processing.last_duration`` metric report. Before it, the ``airflow.*`` modules
    the file names are imported, as the manager does before it forks the parsing process
    (``parsing_pre_import_modules``, on by default; ``pre_import`` is that time, paid once
    per manager, not per parse). ``cold`` is the first such parse in a fresh process,
    ``warm`` the second. ``bare`` is the file run with ``runpy`` in a
    process that had imported only ``airflow.sdk`` (what a plain interpreter pays, the
    imports of Airflow's models and of Cosmos included), for comparison.
    """
    import runpy

    path = Path(args["file"])
    if args.get("bare"):
        import airflow.sdk  # noqa: F401  (the bare baseline: only the SDK a DAG file imports)

        t0 = time.perf_counter()
        runpy.run_path(str(path), run_name="__bench_parse__")
        return {"bare": time.perf_counter() - t0}

    import airflow.dag_processing.processor as processor  # the manager's imports
    import structlog
    from airflow.dag_processing.dagbag import BundleDagBag

    # what the manager does for this file before it forks the process that parses it
    # ([dag_processor] parsing_pre_import_modules, on by default): import the airflow.*
    # modules the file names, once per manager, outside the parse's duration
    t0 = time.perf_counter()
    processor._pre_import_airflow_modules(str(path), structlog.get_logger())
    pre_import = time.perf_counter() - t0

    def parse() -> float:
        bag = BundleDagBag(
            dag_folder=str(path), bundle_path=path.parent, bundle_name="bench", load_op_links=False
        )
        if bag.import_errors:
            raise RuntimeError(f"{path.name} does not parse: {bag.import_errors}")
        return sum(stat.duration.total_seconds() for stat in bag.dagbag_stats)

    cold = parse()
    warm = parse()
    return {"cold": cold, "warm": warm, "pre_import": pre_import}


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "generate": _child_generate,
    "pipeline": _child_pipeline,
    "copy": _child_copy,
    "to_sql": _child_to_sql,
    "parse": _child_parse,
}


def child(kind: str, args: dict[str, Any], result_path: Path) -> None:
    from retention_pipeline.cli import airflow_env

    os.environ.update(airflow_env())  # the project's Airflow settings, under RETENTION_HOME
    result = CHILDREN[kind](args)
    result_path.write_text(json.dumps(result, indent=1, default=str))


# --- the driver -----------------------------------------------------------------------------------


@contextmanager
def _scale_home(keep: bool, warehouse_needed: bool = True) -> Iterator[tuple[Path, dict[str, str]]]:
    """A temporary RETENTION_HOME and the environment of its children; the warehouse
    started there (or the scratch database on RETENTION_WAREHOUSE_URL) goes at the end."""
    from retention_pipeline import warehouse
    from retention_pipeline.config import get_settings

    home = Path(tempfile.mkdtemp(prefix="retention-pipeline-bench-"))
    env = {**_base_env(), "RETENTION_HOME": str(home)}
    scratch = None
    if warehouse_needed and os.environ.get("RETENTION_WAREHOUSE_URL"):
        _, scratch = _database(os.environ["RETENTION_WAREHOUSE_URL"])
        env["RETENTION_WAREHOUSE_URL"] = scratch.sqlalchemy_url("psycopg")
    failed = True
    try:
        yield home, env
        failed = False
    finally:
        keep = keep or failed  # a failed run's logs and data stay for inspection
        if scratch is not None:
            if not keep:
                _drop(scratch)
        else:
            warehouse.stop_embedded(replace(get_settings(), home=home, warehouse_url=None))
        if keep:
            print(f"  kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


def _server_url(home: Path, env: dict[str, str]) -> str:
    from retention_pipeline import warehouse
    from retention_pipeline.config import get_settings

    if env.get("RETENTION_WAREHOUSE_URL"):
        return env["RETENTION_WAREHOUSE_URL"]
    return str(warehouse.embedded_address(replace(get_settings(), home=home)).sqlalchemy_url("psycopg"))


def run_scale(customers: int, *, end: date, seed: int, to_sql_rows: int | None, keep: bool) -> dict[str, Any]:
    daily_from = end - timedelta(days=7)
    result: dict[str, Any] = {"customers": customers}
    with _scale_home(keep) as (home, env):
        logs = home / "bench"
        t0 = time.perf_counter()
        args = {
            "customers": customers,
            "end": end.isoformat(),
            "daily_from": daily_from.isoformat(),
            "seed": seed,
            "ticket_rate": float(os.environ.get("BENCH_TICKET_RATE", "1.5")),
        }
        result["generate"] = _spawn("generate", args, env, logs / "generate.log")
        print(f"  generated {result['generate']['rows']} in {result['generate']['seconds']:.1f} s")
        result["pipeline"] = _spawn("pipeline", args, env, logs / "pipeline.log")
        p = result["pipeline"]
        print(
            f"  history ingest {p['history_ingest']['wall_seconds']:.1f} s, full weekly "
            f"{p['full_weekly']['wall_seconds']:.1f} s, 7 daily ingests "
            f"{p['incremental_ingest']['wall_seconds']:.1f} s, incremental weekly "
            f"{p['incremental_weekly']['wall_seconds']:.1f} s"
        )
        _, scratch = _database(_server_url(home, env))
        try:
            compare_env = {**env, "RETENTION_WAREHOUSE_URL": scratch.sqlalchemy_url("psycopg")}
            result["copy"] = _spawn("copy", {"files": p["history_files"]}, compare_env, logs / "copy.log")
            orders_history = [name for entity, name in p["history_files"] if entity == "orders"]
            if to_sql_rows is not None and orders_history:
                result["to_sql"] = _spawn(
                    "to_sql",
                    {"file": orders_history[0], "cap": to_sql_rows},
                    compare_env,
                    logs / "to_sql.log",
                )
        finally:
            _drop(scratch)
        result["seconds"] = time.perf_counter() - t0
    return result


def measure_dag_parse(runs: int = 3) -> dict[str, Any]:
    from retention_pipeline.config import PROJECT_ROOT

    out: dict[str, Any] = {}
    with _scale_home(keep=False, warehouse_needed=False) as (home, env):
        # the weekly DAG renders from dbt's manifest: build it first if it is stale
        subprocess.run(
            [str(Path(sys.executable).parent / "retention"), "dbt-parse"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for path in sorted((PROJECT_ROOT / "dags").glob("*.py")):
            logs = home / "bench"
            samples = [
                _spawn("parse", {"file": str(path)}, env, logs / f"parse_{path.stem}_{i}.log")
                for i in range(runs)
            ]
            bare = [
                _spawn(
                    "parse", {"file": str(path), "bare": True}, env, logs / f"parse_bare_{path.stem}_{i}.log"
                )
                for i in range(runs)
            ]
            out[path.name] = {
                "cold_seconds": statistics.median(s["cold"] for s in samples),
                "warm_seconds": statistics.median(s["warm"] for s in samples),
                "bare_seconds": statistics.median(s["bare"] for s in bare),
                "pre_import_seconds": statistics.median(s["pre_import"] for s in samples),
                "cold_runs": [s["cold"] for s in samples],
                "warm_runs": [s["warm"] for s in samples],
                "bare_runs": [s["bare"] for s in bare],
            }
    return out


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _linear_fit(points: list[tuple[float, float]]) -> dict[str, float | None]:
    """seconds = fixed + per_row * rows, least squares over the scales: the fixed part is
    what a run costs whatever the data (Airflow, dbt and GX start-up per task)."""
    if len({x for x, _ in points}) < 2:
        return {"fixed_seconds": None, "marginal_us_per_row": None}
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return {"fixed_seconds": my - slope * mx, "marginal_us_per_row": slope * 1e6}


def build_report(
    scales: list[dict[str, Any]], parse: dict[str, Any], settings: dict[str, Any]
) -> dict[str, Any]:
    largest = scales[-1]
    p = largest["pipeline"]
    history = p["history_ingest"]
    copy = largest["copy"]
    to_sql = largest.get("to_sql")
    ingest = {
        "scale_customers": largest["customers"],
        "files": "the history file of each entity (one ingest DAG run)",
        "rows_read": {e: v["rows_read"] for e, v in history["entities"].items() if v["rows_read"]},
        "pipeline": {
            "what": "the ingest DAG run (land -> GX gate -> publish, per entity), wall time",
            "seconds": history["wall_seconds"],
            "rows_per_second": history["rows_per_second"],
            "tasks_seconds": history["tasks_seconds"],
            "tasks_rows_per_second": history["tasks_rows_per_second"],
            "airflow_overhead_seconds": history["airflow_overhead_seconds"],
            "entities": history["entities"],
        },
        "copy": copy,
        "to_sql": to_sql,
        "ratio_to_copy": _ratio(history["rows_per_second"], copy["rows_per_second"]),
        "ratio_to_to_sql": _ratio(history["rows_per_second"], to_sql["rows_per_second"]) if to_sql else None,
        "tasks_ratio_to_copy": _ratio(history["tasks_rows_per_second"], copy["rows_per_second"]),
        "by_scale": [
            {
                "customers": s["customers"],
                "rows_read": s["pipeline"]["history_ingest"]["rows_read"],
                "rows_per_second": s["pipeline"]["history_ingest"]["rows_per_second"],
                "copy_rows_per_second": s["copy"]["rows_per_second"],
                "ratio_to_copy": _ratio(
                    s["pipeline"]["history_ingest"]["rows_per_second"], s["copy"]["rows_per_second"]
                ),
            }
            for s in scales
        ],
    }

    def stages(s: dict[str, Any], kind: str) -> dict[str, Any]:
        weekly = s["pipeline"][f"{kind}_weekly"]
        load = s["pipeline"]["history_ingest" if kind == "full" else "incremental_ingest"]["wall_seconds"]
        return {
            "week": s["pipeline"]["weeks"][kind],
            "load_seconds": load,
            **{k: v for k, v in weekly.items() if k != "tasks"},
        }

    weekly_stages = {
        "scale_customers": largest["customers"],
        "load": "the ingest DAG run(s) that fed the week: the history run (full), the 7 daily runs (incremental)",
        "full": stages(largest, "full"),
        "incremental": stages(largest, "incremental"),
    }

    def incremental_vs_full(s: dict[str, Any]) -> dict[str, Any]:
        q = s["pipeline"]
        full_e2e = q["history_ingest"]["wall_seconds"] + q["full_weekly"]["wall_seconds"]
        incr_e2e = q["incremental_ingest"]["wall_seconds"] + q["incremental_weekly"]["wall_seconds"]
        return {
            "customers": s["customers"],
            "full_weekly_seconds": q["full_weekly"]["wall_seconds"],
            "incremental_weekly_seconds": q["incremental_weekly"]["wall_seconds"],
            "weekly_ratio": _ratio(q["incremental_weekly"]["wall_seconds"], q["full_weekly"]["wall_seconds"]),
            "dbt_ratio": _ratio(
                q["incremental_weekly"]["dbt_total_seconds"], q["full_weekly"]["dbt_total_seconds"]
            ),
            "history_ingest_seconds": q["history_ingest"]["wall_seconds"],
            "week_ingest_seconds": q["incremental_ingest"]["wall_seconds"],
            "ingest_ratio": _ratio(
                q["incremental_ingest"]["wall_seconds"], q["history_ingest"]["wall_seconds"]
            ),
            "end_to_end_ratio": _ratio(incr_e2e, full_e2e),
        }

    per_row = []
    for s in scales:
        q = s["pipeline"]
        orders = s["generate"]["rows"]["orders"]
        rows_read = q["history_ingest"]["rows_read"] + q["incremental_ingest"]["rows_read"]
        ingest_seconds = q["history_ingest"]["wall_seconds"] + q["incremental_ingest"]["wall_seconds"]
        per_row.append(
            {
                "customers": s["customers"],
                "orders": orders,
                "rows_read": rows_read,
                "full_weekly_seconds": q["full_weekly"]["wall_seconds"],
                "full_weekly_us_per_order": q["full_weekly"]["wall_seconds"] / orders * 1e6,
                "full_dbt_us_per_order": q["full_weekly"]["dbt_total_seconds"] / orders * 1e6,
                "incremental_weekly_us_per_order": q["incremental_weekly"]["wall_seconds"] / orders * 1e6,
                "ingest_seconds": ingest_seconds,
                "ingest_us_per_row": ingest_seconds / rows_read * 1e6,
            }
        )
    base = per_row[0]
    for row in per_row:
        row["orders_vs_smallest"] = row["orders"] / base["orders"]
        row["full_weekly_seconds_vs_smallest"] = row["full_weekly_seconds"] / base["full_weekly_seconds"]

    cost_fit = {
        "full_weekly_vs_orders": _linear_fit([(r["orders"], r["full_weekly_seconds"]) for r in per_row]),
        "incremental_weekly_vs_orders": _linear_fit(
            [
                (s["generate"]["rows"]["orders"], s["pipeline"]["incremental_weekly"]["wall_seconds"])
                for s in scales
            ]
        ),
        "history_ingest_vs_rows_read": _linear_fit(
            [
                (
                    s["pipeline"]["history_ingest"]["rows_read"],
                    s["pipeline"]["history_ingest"]["wall_seconds"],
                )
                for s in scales
            ]
        ),
    }

    peak_memory = {
        str(s["customers"]): {
            "pipeline": s["pipeline"]["peak_rss_mb"],
            "pipeline_after_step": s["pipeline"]["peak_rss_mb_after"],
            "generate": s["generate"]["peak_rss_mb"],
            "copy": s["copy"]["peak_rss_mb"],
            **({"to_sql": s["to_sql"]["peak_rss_mb"]} if "to_sql" in s else {}),
        }
        for s in scales
    }
    ivf = [incremental_vs_full(s) for s in scales]
    parse_worst = max((v["cold_seconds"] for v in parse.values()), default=0.0)
    full_seconds = p["full_weekly"]["wall_seconds"]
    targets = {
        "ingest_vs_copy": {"min": TARGETS["ingest_vs_copy_min"], "observed": ingest["ratio_to_copy"]},
        "ingest_vs_to_sql": {"min": TARGETS["ingest_vs_to_sql_min"], "observed": ingest["ratio_to_to_sql"]},
        "full_weekly_seconds": {
            "max": TARGETS["full_weekly_max_seconds"],
            "observed": full_seconds,
            "at": {"customers": largest["customers"], "orders": largest["generate"]["rows"]["orders"]},
            "note": "the target is for 1M customers / 10M orders",
        },
        "incremental_vs_full": {
            "max": TARGETS["incremental_vs_full_max"],
            "observed": ivf[-1]["weekly_ratio"],
        },
        "dag_parse_seconds": {"max": TARGETS["dag_parse_max_seconds"], "observed": parse_worst},
    }
    for t in targets.values():
        obs = t["observed"]
        t["met"] = None if obs is None else (obs >= t["min"] if "min" in t else obs <= t["max"])
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_mb": _memory_mb(),
            "postgresql_version": p["postgresql_version"],
            "warehouse": "RETENTION_WAREHOUSE_URL"
            if os.environ.get("RETENTION_WAREHOUSE_URL")
            else "embedded",
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "settings": settings,
        "generate": {
            str(s["customers"]): {k: v for k, v in s["generate"].items() if k != "peak_rss_mb"}
            for s in scales
        },
        "ingest": ingest,
        "weekly_stages": weekly_stages,
        "peak_memory_mb": peak_memory,
        "incremental_vs_full": {"largest": ivf[-1], "by_scale": ivf},
        "per_row_by_scale": per_row,
        "cost_fit": cost_fit,
        "dag_parse_seconds": parse,
        "targets": targets,
        "scale_seconds": {str(s["customers"]): s["seconds"] for s in scales},
    }


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def print_table(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(
        f"\npipeline benchmark: {m['cpus']} CPUs, {_fmt(m['memory_mb'], ',.0f')} MiB, PostgreSQL "
        f"{m['postgresql_version']} ({m['warehouse']})"
    )
    print(
        f"{'customers':>10} {'orders':>11} {'gen s':>7} {'ingest s':>9} {'full wk s':>10} "
        f"{'incr wk s':>10} {'incr/full':>9} {'us/order':>9} {'us/row in':>9} {'peak MiB':>9}"
    )
    ivf = {row["customers"]: row for row in report["incremental_vs_full"]["by_scale"]}
    for row in report["per_row_by_scale"]:
        c = row["customers"]
        gen = report["generate"][str(c)]
        print(
            f"{c:>10,} {row['orders']:>11,} {gen['seconds']:>7.1f} {row['ingest_seconds']:>9.1f} "
            f"{row['full_weekly_seconds']:>10.1f} {ivf[c]['incremental_weekly_seconds']:>10.1f} "
            f"{_fmt(ivf[c]['weekly_ratio']):>9} {row['full_weekly_us_per_order']:>9.1f} "
            f"{row['ingest_us_per_row']:>9.1f} {report['peak_memory_mb'][str(c)]['pipeline']:>9.0f}"
        )
    fit = report["cost_fit"]["full_weekly_vs_orders"]
    if fit["fixed_seconds"] is not None:
        print(
            f"  full weekly ~ {fit['fixed_seconds']:.1f} s fixed + {fit['marginal_us_per_row']:.1f} us per order"
            " (least squares over the scales)"
        )
    ing = report["ingest"]
    to_sql = ing["to_sql"]
    print(f"\ningest, history files at {ing['scale_customers']:,} customers ({ing['rows_read']}):")
    print(f"  {'ingest DAG':<12} {ing['pipeline']['rows_per_second']:>12,.0f} rows/s")
    print(f"  {'  its tasks':<12} {ing['pipeline']['tasks_rows_per_second']:>12,.0f} rows/s")
    print(f"  {'COPY':<12} {ing['copy']['rows_per_second']:>12,.0f} rows/s")
    if to_sql:
        capped = f" (first {to_sql['rows']:,} orders{', capped' if to_sql['capped'] else ''})"
        print(f"  {'to_sql':<12} {to_sql['rows_per_second']:>12,.0f} rows/s{capped}")
    print(
        f"  ratios: ingest/COPY {_fmt(ing['ratio_to_copy'])}x, ingest/to_sql {_fmt(ing['ratio_to_to_sql'])}x"
    )
    ws = report["weekly_stages"]
    full, incr = ws["full"], ws["incremental"]
    print(
        f"\nweekly run by stage at {ws['scale_customers']:,} customers (s):  full {full['week']}, incremental {incr['week']}"
    )
    rows = [("load (ingest DAG)", full["load_seconds"], incr["load_seconds"])]
    rows += [
        (k, full["stages_seconds"][k], incr["stages_seconds"].get(k, 0.0)) for k in full["stages_seconds"]
    ]
    rows += [
        ("airflow overhead", full["airflow_overhead_seconds"], incr["airflow_overhead_seconds"]),
        ("weekly DAG wall", full["wall_seconds"], incr["wall_seconds"]),
    ]
    for name, a, b in rows:
        print(f"  {name:<18} {a:>9.1f} {b:>9.1f}")
    slow = list(full["dbt_models_seconds"].items())[:6]
    print("  slowest dbt nodes (full): " + ", ".join(f"{n} {s:.1f}" for n, s in slow))
    print(
        "\nDAG parse as the DAG processor does it, median of 3 fresh processes "
        "(cold / warm / bare s; the manager's pre-import of the file's airflow modules apart):"
    )
    for name, v in report["dag_parse_seconds"].items():
        print(
            f"  {name:<28} {v['cold_seconds']:>6.3f} {v['warm_seconds']:>6.3f} {v['bare_seconds']:>6.3f}"
            f"  (pre-import {v['pre_import_seconds']:.3f})"
        )
    print("\ntargets:")
    for name, t in report["targets"].items():
        bound = f">= {t['min']}" if "min" in t else f"<= {t['max']}"
        verdict = {True: "met", False: "NOT met", None: "-"}[t["met"]]
        print(f"  {name:<22} {_fmt(t['observed'], '.3f'):>10}  ({bound})  {verdict}")


def write_json(out: Path, report: dict[str, Any]) -> None:
    """Set the key ``pipeline`` of ``out``, keeping whatever else is there (the ingest
    benchmark's figures); an unreadable file is replaced."""
    existing: dict[str, Any] = {}
    if out.exists():
        try:
            loaded = json.loads(out.read_text())
            existing = loaded if isinstance(loaded, dict) else {}
        except json.JSONDecodeError:
            print(f"warning: {out} is not JSON; replacing it")
    existing["pipeline"] = report
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(existing, indent=2, default=str) + "\n")
    tmp.replace(out)
    print(f"\nwrote {out} (key 'pipeline')")


def main() -> None:
    if isinstance(sys.stdout, io.TextIOWrapper):  # progress shows at once under make or tee
        sys.stdout.reconfigure(line_buffering=True)
    total = _env_int("BENCH_CUSTOMERS", 1_800_000)
    fractions = [float(f) for f in os.environ.get("BENCH_SCALES", "0.01,0.1,1").split(",") if f.strip()]
    customers = sorted({max(1, round(total * f)) for f in fractions})
    to_sql_rows = _env_int("BENCH_TO_SQL_ROWS", 1_000_000)
    seed = _env_int("BENCH_SEED", 7)
    end = date.fromisoformat(os.environ["BENCH_END"]) if os.environ.get("BENCH_END") else _this_monday()
    if end.weekday() != 0:
        raise SystemExit(f"BENCH_END must be a Monday, got {end}")
    keep = os.environ.get("BENCH_KEEP", "") == "1"
    out = Path(os.environ.get("BENCH_OUT", "bench_results.json"))
    settings = {
        "customers": total,
        "scales": fractions,
        "scale_customers": customers,
        "to_sql_rows": to_sql_rows,
        "seed": seed,
        "end": end.isoformat(),
        "daily_from": (end - timedelta(days=7)).isoformat(),
    }
    print(f"pipeline benchmark: scales {customers} customers, data up to {end}")
    t0 = time.perf_counter()
    parse = measure_dag_parse()
    print("DAG parse: " + ", ".join(f"{k} {v['cold_seconds']:.2f} s" for k, v in parse.items()))
    results = []
    for n in customers:
        print(f"scale {n:,} customers:")
        started = time.perf_counter()
        results.append(
            run_scale(
                n, end=end, seed=seed, to_sql_rows=to_sql_rows if n == customers[-1] else None, keep=keep
            )
        )
        print(f"  done in {time.perf_counter() - started:.0f} s")
        # a long run keeps what it measured so far, whatever happens to the next scale
        out.with_suffix(".partial.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    report = build_report(results, parse, settings)
    report["total_seconds"] = time.perf_counter() - t0
    print_table(report)
    write_json(out, report)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], json.loads(sys.argv[3]), Path(sys.argv[4]))
    else:
        main()
