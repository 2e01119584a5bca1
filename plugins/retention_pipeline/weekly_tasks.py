"""The bodies of the weekly DAG's tasks (kept out of the DAG file so it parses fast)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from retention_pipeline import warehouse
from retention_pipeline.config import get_settings
from retention_pipeline.entities import ENTITIES
from retention_pipeline.weeks import week_of_interval

log = logging.getLogger(__name__)

# every mart has a suite expectations/marts_<mart>.json; all must pass before publish
MART_GATES = (
    "dim_customers",
    "rpt_weekly_kpis",
    "rpt_monthly_kpis",
    "rpt_call_list",
    "rpt_stage_transitions",
    "fct_customer_weekly_status",
    "rpt_cohort_retention_monthly",
    "rpt_cohort_retention_weekly",
    "rpt_service_quality",
    "rpt_satisfaction_quarterly",
    "rpt_survey_comments",
    "rpt_campaign_results",
    "rpt_campaign_reasons",
)


class SourcesNotReady(RuntimeError):
    pass


def _week(data_interval_start: datetime | None) -> str:
    if data_interval_start is None:
        raise ValueError(
            "this run has no data interval: trigger it with a logical date, "
            "or use `retention run --week YYYY-Www`"
        )
    return week_of_interval(data_interval_start, get_settings().timezone)


def check_sources(interval_start: datetime, interval_end: datetime) -> dict[str, str]:
    """Stop before dbt when a source is empty or has not reached the reporting week.

    Lateness is judged by event time (the newest order), not by load time, so that a
    backfill of an old week, loaded today, is judged by what it contains.

    Nothing here reads all of raw: the week's cost must not grow with its history (at
    10M orders the counts and newest events this once scanned for took ~2 s a week).
    Emptiness is one row probed, the newest load is the newest batch's (one probe of the
    ``_batch_id`` index, as dbt's ``loaded_at_query``), the row count logged is the
    planner's estimate, and the newest order is looked for within the allowed lag before
    the week's end, which raw.orders' BRIN index on ``ordered_at`` (ddl.py) narrows to
    the last days' pages. Only when none is there does it scan for the newest order
    before the week's end, to say how stale the source is.
    """
    settings = get_settings()
    warehouse.bootstrap()
    problems, seen = [], {}
    lag = timedelta(hours=settings.max_source_lag_hours)
    with warehouse.connect() as conn:
        for name, entity in ENTITIES.items():
            row = conn.execute(
                f"select exists (select from raw.{name}), "
                f"(select _loaded_at from raw.{name} order by _batch_id desc limit 1), "
                f"(select reltuples::bigint from pg_class where oid = 'raw.{name}'::regclass)"
            ).fetchone()
            has_rows, loaded_at, estimate = row or (False, None, -1)
            rows = f"~{estimate} rows (planner estimate)" if estimate >= 0 else "rows not estimated yet"
            seen[name] = f"{rows}, newest load {loaded_at}"
            if not has_rows and not entity.may_be_empty:
                problems.append(f"raw.{name} is empty")
        order_time = ENTITIES["orders"].event_column
        recent = conn.execute(
            f"select max({order_time}) from raw.orders where {order_time} >= %s and {order_time} < %s",
            (interval_end - lag, interval_end),
        ).fetchone()
        if recent is None or recent[0] is None:
            row = conn.execute(
                f"select max({order_time}) from raw.orders where {order_time} < %s", (interval_end,)
            ).fetchone()
            newest_order = row[0] if row else None
            if newest_order is not None:
                problems.append(
                    f"raw.orders is stale: newest order {newest_order.isoformat()} is more than "
                    f"{settings.max_source_lag_hours} h before the week's end {interval_end.isoformat()}"
                )
        else:
            seen["orders"] += f", newest order before the week's end {recent[0]}"
    for name, text in seen.items():
        log.info("raw.%s: %s", name, text)
    problems += source_freshness(interval_end)
    if problems:
        raise SourcesNotReady("; ".join(problems))
    return seen


def source_freshness(interval_end: datetime) -> list[str]:
    """dbt's source freshness (each source's newest load, by its ``loaded_at_query``, and
    thresholds, as declared in the sources' yml), judged at the end of the reporting week
    instead of at the wall clock: age = interval end - newest load, and a source loaded
    after the week ended is fresh for that week. So a backfill of an old week, whose rows
    were loaded long ago or long after, is judged by what the warehouse held when that
    week ended. dbt is run only to find the newest load per source; its own wall-clock
    verdict is ignored. Returns the errors; warnings are logged.
    """
    import tempfile
    from pathlib import Path

    import dbt.cli.main

    from retention_pipeline import dbt_process
    from retention_pipeline.dbt_config import export_dbt_env, kept_partial_parse

    settings = get_settings()
    env = export_dbt_env()
    dbt_process.prepare()
    project = str(settings.dbt_project_dir)
    # --no-write-json: the results are read from the invocation, not from sources.json
    args = [
        "--no-write-json",
        "source",
        "freshness",
        "--quiet",
        "--project-dir",
        project,
        "--profiles-dir",
        project,
    ]
    # from an empty target dbt parses the whole project, ~3 s: the partial-parse file of
    # the last check on this warehouse, else the project's (dbt-parse writes it with no
    # vars, as this call has, but maybe for another connection)
    project_state = settings.dbt_project_dir / "target" / "partial_parse.msgpack"
    with (
        tempfile.TemporaryDirectory(prefix="retention-freshness-") as target,
        kept_partial_parse(Path(target), env, args, seed=project_state) as invocation,
    ):
        outcome = dbt.cli.main.dbtRunner().invoke([*args, "--target-path", target])
        results = getattr(outcome.result, "results", None)
        # no results: dbt stopped before the check, maybe before it parsed (stale
        # sources are results, and the parse behind them counts)
        invocation.failed = results is None
    if results is None:
        return [f"dbt source freshness did not run: {outcome.exception}"]
    errors = []
    for res in results:
        node = getattr(res, "node", None)
        max_loaded_at = getattr(res, "max_loaded_at", None)
        if node is None or max_loaded_at is None:
            name = getattr(node, "unique_id", res)
            errors.append(f"source freshness of {name} failed: {getattr(res, 'message', '')}")
            continue
        age = max(0.0, (interval_end - max_loaded_at).total_seconds())
        status = str(getattr(node.freshness.status(age), "value", "pass")) if node.freshness else "pass"
        where = f"{node.schema}.{node.name}"
        text = (
            f"{where} is stale: newest load {max_loaded_at.isoformat()} is "
            f"{age / 3600:.0f} h before the week's end {interval_end.isoformat()}"
        )
        if status == "error":
            errors.append(text)
        elif status == "warn":
            log.warning("%s (warn_after %s)", text, node.freshness.warn_after)
        else:
            log.info("%s fresh for the week (newest load %s)", where, max_loaded_at.isoformat())
    return errors


def prepare_marts_build() -> dict[str, int]:
    from retention_pipeline.publish import prepare_build

    return prepare_build()


def publish_marts(interval_start: datetime) -> dict[str, str]:
    from retention_pipeline import bi_access
    from retention_pipeline.publish import publish_marts

    published = publish_marts(_week(interval_start))
    # the swap re-points existing BI views; new marts get theirs (contacts masked) here
    views = bi_access.refresh()
    return {**published, "bi_views": str(len(views))}


def gate_marts(interval_start: datetime, run_id: str | None) -> dict[str, int]:
    """The audit of write-audit-publish: GX suites and week-over-week drift, on the build
    schema dbt just wrote; BI keeps reading the published marts meanwhile."""
    from retention_pipeline.publish import BUILD_SCHEMA, drift_check
    from retention_pipeline.quality import GateResult, build_docs_index, run_gate

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    week = _week(interval_start)
    address = warehouse.address()
    evaluated = warnings = 0
    failures = []
    failed_results: list[GateResult] = []
    for table in MART_GATES:
        try:
            result = run_gate(
                address,
                f"marts_{table}",
                BUILD_SCHEMA,
                table,
                run_name=f"{run_id or week} marts_{table}",
                raise_on_failure=False,
                build_index=False,
            )
        except Exception as exc:  # a missing table is a failed gate too
            failures.append(f"{BUILD_SCHEMA}.{table}: {exc}")
            continue
        evaluated += result.evaluated
        warnings += len(result.warnings)
        if result.errors:
            failures.append(result.summary())
            failed_results.append(result)
    # the site's index once for all the marts' gates, not after each: a build lists the whole
    # results folder (README, Operations: "Prune old Data Docs")
    try:
        build_docs_index()
    except Exception:  # the pages are written; a stale index is no reason to stop
        log.exception("the Data Docs index was not rebuilt")
    try:
        with warehouse.connect() as conn:
            has_week = warehouse.scalar(
                conn, f"select count(*) from {BUILD_SCHEMA}.rpt_weekly_kpis where iso_week = %s", (week,)
            )
    except Exception:  # a missing table was reported above
        has_week = 0
    if not has_week:
        failures.append(f"{BUILD_SCHEMA}.rpt_weekly_kpis has no row for {week}")
    drift = drift_check(week)
    evaluated += drift.evaluated
    warnings += len(drift.warnings)
    if drift.findings:
        (log.error if drift.errors else log.warning)("%s", drift.summary())
    if drift.errors:
        failures.append(drift.summary())
        failed_results.append(drift)
    if failures:
        from retention_pipeline.quality import QualityGateFailed

        raise QualityGateFailed(
            "marts failed their gate; nothing is published or sent:\n" + "\n".join(failures), failed_results
        )
    return {"expectations": evaluated, "warnings": warnings}


def send_digest(interval_start: datetime, quality: dict[str, int]) -> dict[str, str]:
    from retention_pipeline.digest_task import deliver_weekly_digest

    return deliver_weekly_digest(_week(interval_start), quality)


def push_call_list(interval_start: datetime) -> dict[str, str]:
    from retention_pipeline.call_list import push_weekly_call_list

    return push_weekly_call_list(_week(interval_start))
