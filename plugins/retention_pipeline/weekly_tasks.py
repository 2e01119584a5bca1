"""The bodies of the weekly DAG's tasks (kept out of the DAG file so it parses fast)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from retention_pipeline import warehouse
from retention_pipeline.config import get_settings
from retention_pipeline.entities import ENTITIES
from retention_pipeline.weeks import week_of_interval

log = logging.getLogger(__name__)

MART_GATES = ("dim_customers", "rpt_weekly_kpis", "rpt_call_list")


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
    """
    settings = get_settings()
    warehouse.bootstrap()
    problems, seen = [], {}
    with warehouse.connect() as conn:
        for name, entity in ENTITIES.items():
            row = conn.execute(
                f"select count(*), max({entity.event_column}) filter (where {entity.event_column} < %s), "
                f"max(_loaded_at) from raw.{name}",
                (interval_end,),
            ).fetchone()
            count, newest_event, loaded_at = row or (0, None, None)
            seen[name] = f"{count} rows, newest event {newest_event}, loaded {loaded_at}"
            if count == 0:
                problems.append(f"raw.{name} is empty")
        newest_order = warehouse.scalar(
            conn, "select max(ordered_at) from raw.orders where ordered_at < %s", (interval_end,)
        )
    lag = timedelta(hours=settings.max_source_lag_hours)
    if newest_order is not None and newest_order < interval_end - lag:
        problems.append(
            f"raw.orders is stale: newest order {newest_order.isoformat()} is more than "
            f"{settings.max_source_lag_hours} h before the week's end {interval_end.isoformat()}"
        )
    for name, text in seen.items():
        log.info("raw.%s: %s", name, text)
    if problems:
        raise SourcesNotReady("; ".join(problems))
    return seen


def gate_marts(interval_start: datetime, run_id: str | None) -> dict[str, int]:
    from retention_pipeline.quality import run_gate

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    week = _week(interval_start)
    address = warehouse.address()
    evaluated = warnings = 0
    failures = []
    for table in MART_GATES:
        try:
            result = run_gate(
                address,
                f"marts_{table}",
                "marts",
                table,
                run_name=f"{run_id or week} marts_{table}",
                raise_on_failure=False,
            )
        except Exception as exc:  # a missing table is a failed gate too
            failures.append(f"marts.{table}: {exc}")
            continue
        evaluated += result.evaluated
        warnings += len(result.warnings)
        if result.errors:
            failures.append(result.summary())
    with warehouse.connect() as conn:
        has_week = warehouse.scalar(
            conn, "select count(*) from marts.rpt_weekly_kpis where iso_week = %s", (week,)
        )
    if not has_week:
        failures.append(f"marts.rpt_weekly_kpis has no row for {week}")
    if failures:
        from retention_pipeline.quality import QualityGateFailed

        raise QualityGateFailed("marts failed their gate; nothing is sent:\n" + "\n".join(failures))
    return {"expectations": evaluated, "warnings": warnings}


def send_digest(interval_start: datetime, quality: dict[str, int]) -> dict[str, str]:
    from retention_pipeline.digest_task import deliver_weekly_digest

    return deliver_weekly_digest(_week(interval_start), quality)


def push_call_list(interval_start: datetime) -> dict[str, str]:
    from retention_pipeline.call_list import push_weekly_call_list

    return push_weekly_call_list(_week(interval_start))
