"""Every DAG imports cleanly, follows the house rules, and has real data intervals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {p.stem for p in DAG_FILES}


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_one_dag_per_file_named_after_it_with_tags_docs_and_retries(dagbag, path):
    dag = dagbag.dags.get(path.stem)
    assert dag is not None, f"{path.name} must define the DAG {path.stem}"
    assert dag.tags, "tags are required"
    assert dag.doc_md and len(dag.doc_md) > 100, "doc_md=__doc__ with a real description"
    assert dag.default_args.get("retries", 0) >= 1
    assert dag.catchup is False
    assert dag.max_active_runs == 1


def test_the_weekly_interval_is_the_iso_week_just_ended(dagbag):
    dag = dagbag.dags.get("retention_weekly")
    interval = dag.timetable.infer_manual_data_interval(run_after=datetime(2026, 11, 23, 0, 0, tzinfo=UTC))
    assert interval.start == datetime(2026, 11, 16, tzinfo=UTC)  # Monday of 2026-W47
    assert interval.end == datetime(2026, 11, 23, tzinfo=UTC)


def test_the_ingest_interval_is_one_day(dagbag):
    dag = dagbag.dags.get("retention_ingest")
    interval = dag.timetable.infer_manual_data_interval(run_after=datetime(2026, 11, 17, 0, 0, tzinfo=UTC))
    assert (interval.start, interval.end) == (
        datetime(2026, 11, 16, tzinfo=UTC),
        datetime(2026, 11, 17, tzinfo=UTC),
    )


def test_the_weekly_dag_gates_before_anything_leaves(dagbag):
    dag = dagbag.dags.get("retention_weekly")
    gate = dag.get_task("gate_marts")
    for leaving in ("send_digest", "push_call_list"):
        # write-audit-publish: only marts that passed the gate and were published go out
        assert "publish_marts" in dag.get_task(leaving).upstream_task_ids
        assert "gate_marts" in dag.get_task(leaving).get_flat_relative_ids(upstream=True)
    assert "gate_marts" in dag.get_task("publish_marts").upstream_task_ids
    dbt_tasks = [t for t in dag.task_ids if t.startswith("dbt.")]
    assert dbt_tasks, "dbt models are rendered as tasks"
    assert all(t in gate.get_flat_relative_ids(upstream=True) for t in dbt_tasks)
    for t in dbt_tasks:
        assert "check_sources" in dag.get_task(t).get_flat_relative_ids(upstream=True)


def test_the_weekly_dbt_tasks_skip_dbt_s_json_artifacts_and_log_file(dagbag):
    """Each dbt task runs in a throw-away copy of the project: writing the manifest
    twice and run_results.json there was most of a task's fixed cost (README,
    Performance), so every dbt task passes --no-write-json ahead of its subcommand, and
    no debug log file that would be deleted with the copy; and lists the relations of
    its own node's schemas only (--cache-selected-only)."""
    dag = dagbag.dags.get("retention_weekly")
    dbt_tasks = [dag.get_task(t) for t in dag.task_ids if t.startswith("dbt.")]
    assert len(dbt_tasks) > 40
    for task in dbt_tasks:
        command, _ = task.build_cmd(context={}, cmd_flags=None)
        assert "--no-write-json" in command, task.task_id
        subcommand = next(i for i, part in enumerate(command) if part in ("build", "test", "run", "seed"))
        assert command.index("--no-write-json") < subcommand, command
        level = command.index("--log-level-file")
        assert command[level + 1] == "none" and level < subcommand, command
        assert command.index("--cache-selected-only") < subcommand, command


def test_dag_files_import_nothing_heavy_at_parse_time():
    """No DB driver, pandas or GX at module level: parsing must stay cheap."""
    code = (
        "import sys, json, runpy\n"
        f"for f in {[str(p) for p in DAG_FILES]!r}: runpy.run_path(f)\n"
        "print(json.dumps(sorted(m for m in ('great_expectations','psycopg','psycopg2','matplotlib','pyarrow') if m in sys.modules)))\n"
    )
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_a_parse_imports_no_airflow_module_the_dag_processor_could_have_pre_imported(path):
    """The DAG processor imports the airflow.* modules a DAG file names once, before it
    forks the process of each parse (parsing_pre_import_modules); a module reached only
    through a lazy attribute (airflow.sdk's `task`) is imported again by every parse."""
    code = (
        "import sys, json, runpy\n"
        "import structlog\n"
        "import airflow.dag_processing.processor as processor\n"
        f"processor._pre_import_airflow_modules({str(path)!r}, structlog.get_logger())\n"
        "before = set(sys.modules)\n"
        f"runpy.run_path({str(path)!r})\n"
        "prefixes = ('airflow.sdk.', 'airflow.providers.standard.decorators', "
        "'airflow.providers.standard.operators.python')\n"
        "print(json.dumps(sorted(m for m in set(sys.modules) - before if m.startswith(prefixes))))\n"
    )
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_every_mart_has_a_gx_suite_and_is_gated():
    """A new mart without a suite would reach BI unchecked: fail until it has one."""
    from retention_pipeline.weekly_tasks import MART_GATES

    marts = {p.stem for p in (ROOT / "dbt_project" / "models" / "marts").rglob("*.sql")}
    suites = {p.stem.removeprefix("marts_") for p in (ROOT / "expectations").glob("marts_*.json")}
    assert marts <= suites, f"marts without a GX suite: {sorted(marts - suites)}"
    assert marts <= set(MART_GATES), f"marts not gated: {sorted(marts - set(MART_GATES))}"
