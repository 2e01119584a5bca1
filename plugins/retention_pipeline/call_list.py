"""The weekly call list: from ``marts.rpt_call_list`` to the call center's file.

Every customer pushed is a row in ``ops.outreach_pushes`` keyed by (week, sink,
customer), written as ``pending`` before the file is written and ``pushed`` after. A
re-run of the week rebuilds the file from the ledger's customers, so it pushes nobody
new even if the marts changed in between.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

from retention_pipeline import warehouse
from retention_pipeline.config import get_settings

log = logging.getLogger(__name__)

SINK = "call_center_csv"
COLUMNS = (
    "call_rank",
    "customer_id",
    "full_name",
    "phone",
    "email",
    "manager_id",
    "intervention_level",
    "churn_stage",
    "value_tier",
    "rfm_segment",
    "recency_days",
    "expected_gap_days",
    "open_complaints",
    "last_survey_score",
    "call_reason",
)


def call_list_path(outbox_dir: Path, iso_week: str) -> Path:
    return outbox_dir / "call_lists" / f"call_list_{iso_week}.csv"


def push_weekly_call_list(iso_week: str) -> dict[str, str]:
    settings = get_settings()
    warehouse.bootstrap()
    cols = ", ".join(f"c.{c}" for c in COLUMNS)
    with warehouse.connect() as conn:
        already = warehouse.scalar(
            conn,
            "select count(*) from ops.outreach_pushes where iso_week = %s and sink = %s",
            (iso_week, SINK),
        )
        if not already:
            conn.execute(
                """insert into ops.outreach_pushes (iso_week, sink, customer_id, status, intervention_level, started_at)
                   select %s, %s, customer_id, 'pending', intervention_level, clock_timestamp()
                   from marts.rpt_call_list order by call_rank limit %s
                   on conflict do nothing""",
                (iso_week, SINK, settings.call_list_capacity),
            )
            conn.commit()
        else:
            log.info(
                "%s: the call list of %s was selected before; re-using those %d customers",
                SINK,
                iso_week,
                already,
            )
        rows = conn.execute(
            f"""select {cols} from ops.outreach_pushes p
                join marts.rpt_call_list c using (customer_id)
                where p.iso_week = %s and p.sink = %s
                order by c.call_rank""",
            (iso_week, SINK),
        ).fetchall()
        path = call_list_path(settings.outbox_dir, iso_week)
        _write_csv(path, rows)
        conn.execute(
            """update ops.outreach_pushes set status = 'pushed', detail = %s, finished_at = clock_timestamp()
               where iso_week = %s and sink = %s and status <> 'pushed'""",
            (str(path), iso_week, SINK),
        )
        conn.commit()
    log.info("call list %s: %d customers written to %s", iso_week, len(rows), path)
    return {"path": str(path), "customers": str(len(rows))}


def _write_csv(path: Path, rows: list[tuple[object, ...]]) -> None:
    """Excel-friendly CSV (UTF-8 with BOM, CRLF), readable by its owner only: it holds
    contact data. Written to a temporary name and renamed, so no reader sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    os.replace(tmp, path)
