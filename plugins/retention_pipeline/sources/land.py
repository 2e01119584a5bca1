"""Land one entity's batch from its configured source (the body of the ``land`` task).

The extract becomes a batch like any landing file. The watermark (and Zendesk cursor)
that the extract reached is only *proposed* here, in ``ops.pending_watermarks``; the
publish step moves ``ops.source_watermarks`` in the same transaction that merges the
batch into raw. A batch that fails its gate, or a task that dies, therefore leaves the
watermark where it was and the next run reads the same rows again: nothing is lost.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from retention_pipeline import loading
from retention_pipeline.sources.config import SourceSpec

if TYPE_CHECKING:
    import psycopg

    from retention_pipeline.sources.zendesk import ZendeskClient

log = logging.getLogger(__name__)


def saved_state(conn: psycopg.Connection, spec: SourceSpec) -> tuple[datetime | None, str | None]:
    row = conn.execute(
        "select watermark, cursor from ops.source_watermarks where entity = %s and source_key = %s",
        (spec.entity, spec.source_key),
    ).fetchone()
    conn.commit()
    return (row[0], row[1]) if row else (None, None)


def land_from_source(
    conn: psycopg.Connection,
    spec: SourceSpec,
    landing_dir: Path,
    interval_start: datetime,
    interval_end: datetime,
    future_tolerance_minutes: int = 10,
    sql_url: str | None = None,
    zendesk_client: ZendeskClient | None = None,
) -> loading.LandedBatch | None:
    """Land the entity's changes for the interval; None when nothing changed.

    ``sql_url`` / ``zendesk_client`` replace the Airflow connection lookup (the CLI and
    tests pass them; tasks leave them out).
    """
    if spec.kind == "files":
        return loading.land_files(
            conn, spec.entity, landing_dir, interval_start, interval_end, future_tolerance_minutes
        )
    watermark, cursor = saved_state(conn, spec)
    if spec.kind == "sql":
        from retention_pipeline.sources import sql

        if sql_url is None:
            from retention_pipeline.sources.connections import get_connection, sqlalchemy_url

            assert spec.conn_id is not None
            driver = spec.options.get("driver")
            sql_url = sqlalchemy_url(get_connection(spec.conn_id), str(driver) if driver else None)
        stream, window = sql.extract(spec, sql_url, watermark, interval_start, interval_end)
        new_watermark, new_cursor = window.upper, None
        streams = [stream] if stream else []
    elif spec.kind == "zendesk":
        from retention_pipeline.sources import zendesk

        client = zendesk_client or _zendesk_client(spec)
        try:
            stream, export = zendesk.extract(spec, client, watermark, cursor, interval_start, interval_end)
            streams = [stream] if stream else []
            batch = _land(
                conn, spec, landing_dir, interval_start, interval_end, future_tolerance_minutes, streams
            )
        finally:
            if client is not zendesk_client:
                client.close()
        if batch is not None:
            _propose(conn, batch.batch_id, spec, export.end_time, export.cursor)
        return batch
    else:
        raise ValueError(f"unknown source kind {spec.kind!r}")
    batch = _land(conn, spec, landing_dir, interval_start, interval_end, future_tolerance_minutes, streams)
    if batch is not None:
        _propose(conn, batch.batch_id, spec, new_watermark, new_cursor)
    return batch


def _land(
    conn: psycopg.Connection,
    spec: SourceSpec,
    landing_dir: Path,
    interval_start: datetime,
    interval_end: datetime,
    future_tolerance_minutes: int,
    streams: list[loading.StreamedFile],
) -> loading.LandedBatch | None:
    return loading.land_files(
        conn,
        spec.entity,
        landing_dir,
        interval_start,
        interval_end,
        future_tolerance_minutes,
        streams=streams,
        source=spec.source_key,
    )


def _propose(
    conn: psycopg.Connection,
    batch_id: int,
    spec: SourceSpec,
    watermark: datetime,
    cursor: str | None,
) -> None:
    conn.execute(
        """insert into ops.pending_watermarks (batch_id, entity, source_key, watermark, cursor)
           values (%s, %s, %s, %s, %s)""",
        (batch_id, spec.entity, spec.source_key, watermark, cursor),
    )
    conn.commit()
    log.info("%s batch %d: watermark %s proposed, moves on publish", spec.entity, batch_id, watermark)


def _zendesk_client(spec: SourceSpec) -> ZendeskClient:
    from retention_pipeline.sources.connections import get_connection
    from retention_pipeline.sources.zendesk import RetryPolicy, ZendeskClient

    assert spec.conn_id is not None
    conn = get_connection(spec.conn_id)
    host = str(conn.host or "")
    if not host.startswith(("http://", "https://")):
        # AIRFLOW_CONN_ZENDESK=https://agent%40example.com:<token>@acme.zendesk.com
        scheme = "http" if str(conn.conn_type).lower() == "http" else "https"
        host = f"{scheme}://{host}"
    if conn.port:
        host = f"{host}:{conn.port}"
    return ZendeskClient(
        host, str(conn.login or ""), str(conn.password or ""), RetryPolicy.from_options(spec.options)
    )
