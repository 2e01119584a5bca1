"""The weekly push: one campaign, several sinks, one ledger.

``ops.outreach_pushes`` has a row per (campaign week, sink, customer). It is written
``pending`` (attempts + 1) in its own transaction *before* a batch goes out, and set to
``pushed`` (with the tool's id) or ``rejected`` (with the tool's reason) after. So:

* a re-run pushes nothing that is ``pushed`` or ``rejected``;
* a crash leaves ``pending`` rows with ``attempts > 0``: the next run sends them again,
  and the sinks that cannot deduplicate by key look them up first (see hubspot.py,
  bitrix24.py); the webhook carries idempotency keys for the receiver;
* a sink that keeps failing (retries exhausted, bad credentials) leaves its rows
  ``failed`` and the task raises after the other sinks are done, so Airflow's retry
  resumes exactly the unfinished rows. One sink's outage never blocks the others.

Files (CSV, XLSX) are rewritten whole from the campaign on every run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from retention_pipeline import warehouse
from retention_pipeline.config import Settings, get_settings
from retention_pipeline.outreach.rows import CampaignRow, RowResult
from retention_pipeline.outreach.selection import Assignment, ensure_campaign, plan_campaign

log = logging.getLogger(__name__)

KNOWN_SINKS = ("csv", "xlsx", "webhook", "hubspot", "bitrix24")


class Sink(Protocol):
    name: str
    is_file: bool

    def describe(self, iso_week: str, rows: list[CampaignRow]) -> list[dict[str, object]]: ...

    def push(self, iso_week: str, rows: list[CampaignRow]) -> list[RowResult]: ...


class OutreachPushIncomplete(RuntimeError):
    """Some rows could not be delivered; a retry of the task resumes them."""


@dataclass
class SinkReport:
    sink: str
    pushed: int = 0
    rejected: int = 0
    failed: int = 0
    skipped_done: int = 0
    error: str | None = None


@dataclass
class PushReport:
    iso_week: str
    dry_run: bool
    arms: dict[str, int] = field(default_factory=dict)
    exclusions: dict[str, int] = field(default_factory=dict)
    sinks: list[SinkReport] = field(default_factory=list)
    would_send: dict[str, list[dict[str, object]]] = field(default_factory=dict)
    path: str = ""


def build_sinks(settings: Settings, names: tuple[str, ...] | None = None) -> list[Sink]:
    """The configured sinks; API credentials are read here, when the task runs."""
    from retention_pipeline.outreach.connections import get_connection
    from retention_pipeline.outreach.files import CsvSink, XlsxSink
    from retention_pipeline.outreach.http import RetryPolicy

    policy = RetryPolicy(
        max_attempts=settings.outreach_max_attempts,
        timeout_seconds=settings.outreach_timeout_seconds,
        max_backoff_seconds=settings.outreach_max_backoff_seconds,
    )
    sinks: list[Sink] = []
    for name in names or settings.outreach_sinks:
        if name == "csv":
            sinks.append(CsvSink(settings.outbox_dir))
        elif name == "xlsx":
            sinks.append(XlsxSink(settings.outbox_dir))
        elif name == "webhook":
            from retention_pipeline.outreach.webhook import WebhookSink

            sinks.append(
                WebhookSink(
                    get_connection(settings.outreach_webhook_conn_id), policy, settings.outreach_batch_size
                )
            )
        elif name == "hubspot":
            from retention_pipeline.outreach.hubspot import DEFAULT_HOST, HubSpotSink

            conn = get_connection(settings.hubspot_conn_id, default_host=DEFAULT_HOST)
            sinks.append(HubSpotSink(conn, policy, settings.outreach_batch_size))
        elif name == "bitrix24":
            from retention_pipeline.outreach.bitrix24 import Bitrix24Sink

            sinks.append(Bitrix24Sink(get_connection(settings.bitrix24_conn_id), policy))
        else:
            raise ValueError(
                f"unknown outreach sink {name!r} (RETENTION_OUTREACH_SINKS); known: {', '.join(KNOWN_SINKS)}"
            )
    return sinks


def _summarize(report: PushReport, plan: list[Assignment]) -> None:
    for a in plan:
        report.arms[a.arm] = report.arms.get(a.arm, 0) + 1
        if a.exclusion_reason:
            report.exclusions[a.exclusion_reason] = report.exclusions.get(a.exclusion_reason, 0) + 1


def _record(conn: Any, iso_week: str, sink: str, results: list[RowResult]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            """update ops.outreach_pushes
               set status = %s, detail = %s, external_id = coalesce(%s, external_id), finished_at = clock_timestamp()
               where iso_week = %s and sink = %s and customer_id = %s and status <> 'pushed'""",
            [(r.status, r.detail[:2000], r.external_id, iso_week, sink, r.customer_id) for r in results],
        )
    conn.commit()


def _push_sink(conn: Any, sink: Sink, iso_week: str, rows: list[CampaignRow], report: SinkReport) -> None:
    conn.execute(
        """insert into ops.outreach_pushes (iso_week, sink, customer_id, status, intervention_level, variant,
               idempotency_key, started_at)
           select %s, %s, r.customer_id, 'pending', r.intervention_level, r.variant, r.key, clock_timestamp()
           from unnest(%s::text[], %s::text[], %s::text[], %s::text[]) as r(customer_id, intervention_level, variant, key)
           on conflict do nothing""",
        (
            iso_week,
            sink.name,
            [r.customer_id for r in rows],
            [str(r.payload.get("intervention_level") or "") for r in rows],
            [r.variant for r in rows],
            [r.idempotency_key for r in rows],
        ),
    )
    conn.commit()
    state = {
        cid: (status, attempts)
        for cid, status, attempts in conn.execute(
            "select customer_id, status, attempts from ops.outreach_pushes where iso_week = %s and sink = %s",
            (iso_week, sink.name),
        ).fetchall()
    }
    if sink.is_file:
        todo = rows  # a file is always written whole
    else:
        todo = [
            CampaignRow(**{**r.__dict__, "attempts": state[r.customer_id][1]})
            for r in rows
            if state[r.customer_id][0] in ("pending", "failed")
        ]
    report.skipped_done = 0 if sink.is_file else len(rows) - len(todo)
    size = max(1, len(todo)) if sink.is_file else max(1, int(getattr(sink, "batch_size", 100)))
    # a file sink runs once even for an empty campaign: the call center gets an empty list
    starts = [0] if sink.is_file else list(range(0, len(todo), size))
    for start in starts:
        batch = todo[start : start + size]
        keys = [r.customer_id for r in batch]
        conn.execute(
            """update ops.outreach_pushes set attempts = attempts + 1, started_at = clock_timestamp()
               where iso_week = %s and sink = %s and customer_id = any(%s) and status in ('pending', 'failed')""",
            (iso_week, sink.name, keys),
        )
        conn.commit()
        try:
            results = sink.push(iso_week, batch)
        except Exception as err:  # retries exhausted, bad credentials: the rows stay retryable
            conn.rollback()
            reason = f"{type(err).__name__}: {err}"
            conn.execute(
                """update ops.outreach_pushes set status = 'failed', detail = %s, finished_at = clock_timestamp()
                   where iso_week = %s and sink = %s and customer_id = any(%s) and status in ('pending', 'failed')""",
                (reason[:2000], iso_week, sink.name, [r.customer_id for r in todo[start:]]),
            )
            conn.commit()
            report.failed += len(todo) - start
            report.error = reason
            log.error(
                "outreach %s %s: %s; %d rows left for the retry",
                iso_week,
                sink.name,
                reason,
                len(todo) - start,
            )
            return
        _record(conn, iso_week, sink.name, results)
        answered = {r.customer_id for r in results}
        report.pushed += sum(r.status == "pushed" for r in results)
        report.rejected += sum(r.status == "rejected" for r in results)
        silent = [k for k in keys if k not in answered]
        if silent:  # the tool said nothing about them: not pushed, not rejected, retry
            conn.execute(
                """update ops.outreach_pushes set status = 'failed', detail = 'no answer for this record',
                       finished_at = clock_timestamp()
                   where iso_week = %s and sink = %s and customer_id = any(%s) and status = 'pending'""",
                (iso_week, sink.name, silent),
            )
            conn.commit()
            report.failed += len(silent)
        for r in results:
            if r.status == "rejected":
                log.warning(
                    "outreach %s %s: customer %s rejected: %s", iso_week, sink.name, r.customer_id, r.detail
                )


def push_campaign(
    iso_week: str,
    *,
    dry_run: bool | None = None,
    sinks: tuple[str, ...] | None = None,
    settings: Settings | None = None,
) -> PushReport:
    settings = settings or get_settings()
    dry = settings.outreach_dry_run if dry_run is None else dry_run
    report = PushReport(iso_week=iso_week, dry_run=dry)
    if not dry:
        warehouse.bootstrap()
    built = build_sinks(settings, sinks)
    with warehouse.connect() as conn:
        if dry:
            from retention_pipeline.outreach.selection import load_campaign

            plan = load_campaign(conn, iso_week) or plan_campaign(conn, iso_week, settings)
            conn.rollback()
        else:
            # one pusher per week at a time (a manual CLI push racing the DAG's task):
            # a session lock, released when this connection closes
            conn.execute(
                "select pg_advisory_lock(hashtext('retention_outreach_push'), hashtext(%s))", (iso_week,)
            )
            conn.commit()
            plan = ensure_campaign(conn, iso_week, settings)
        _summarize(report, plan)
        rows = [a.as_row() for a in plan if a.arm == "treatment"]
        for sink in built:
            if sink.name == "csv":
                report.path = str(sink.describe(iso_week, rows)[0]["write"])
            if dry:
                report.would_send[sink.name] = sink.describe(iso_week, rows)
                log.info(
                    "dry run %s -> %s: %d customers, %d requests",
                    iso_week,
                    sink.name,
                    len(rows),
                    len(report.would_send[sink.name]),
                )
                continue
            sink_report = SinkReport(sink.name)
            _push_sink(conn, sink, iso_week, rows, sink_report)
            report.sinks.append(sink_report)
            log.info(
                "outreach %s -> %s: %d pushed, %d rejected, %d failed, %d done before",
                iso_week,
                sink.name,
                sink_report.pushed,
                sink_report.rejected,
                sink_report.failed,
                sink_report.skipped_done,
            )
    log.info("outreach %s: arms %s, exclusions %s", iso_week, report.arms, report.exclusions)
    failed = [s for s in report.sinks if s.failed]
    if failed:
        raise OutreachPushIncomplete(
            "; ".join(f"{s.sink}: {s.failed} rows not delivered ({s.error or 'no answer'})" for s in failed)
            + " -- the ledger keeps them; a retry resumes them without duplicates"
        )
    return report


def push_weekly_call_list(iso_week: str) -> dict[str, str]:
    """The weekly task's entry point (weekly_tasks.push_call_list)."""
    report = push_campaign(iso_week)
    out = {
        "path": report.path,
        "customers": str(report.arms.get("treatment", 0)),
        "holdout": str(report.arms.get("holdout", 0)),
        "excluded": str(report.arms.get("excluded", 0)),
    }
    for s in report.sinks:
        out[f"{s.sink}_pushed"] = str(s.pushed)
        out[f"{s.sink}_rejected"] = str(s.rejected)
    return out
