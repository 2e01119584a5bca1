"""The bodies of the ingest DAG's tasks (kept out of the DAG file so it parses fast)."""

from __future__ import annotations

import logging
from datetime import datetime

from retention_pipeline import loading, warehouse
from retention_pipeline.config import get_settings
from retention_pipeline.quality import QualityGateFailed, run_gate

log = logging.getLogger(__name__)


def land_entity(entity: str, interval_start: datetime, interval_end: datetime) -> int | None:
    settings = get_settings()
    warehouse.bootstrap()
    from retention_pipeline.sources.config import load_sources
    from retention_pipeline.sources.land import land_from_source

    spec = load_sources(settings.sources_file)[entity]
    with warehouse.connect() as conn:
        batch = land_from_source(
            conn,
            spec,
            settings.landing_dir,
            interval_start,
            interval_end,
            settings.future_tolerance_minutes,
        )
    return batch.batch_id if batch else None


def validate_batch(batch_id: int | None, run_id: str | None) -> int | None:
    if batch_id is None:
        return None
    with warehouse.connect() as conn:
        entity = warehouse.scalar(
            conn, "select entity from ops.load_batches where batch_id = %s", (batch_id,)
        )
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    try:
        run_gate(
            warehouse.address(),
            f"raw_{entity}",
            "landing",
            f"{entity}_b{batch_id}_typed",
            run_name=f"{run_id or 'manual'} raw_{entity} batch {batch_id}",
        )
    except QualityGateFailed as exc:
        with warehouse.connect() as conn:
            loading.reject_batch(conn, batch_id, str(exc))
        raise
    return batch_id


def publish(batch_id: int | None) -> dict[str, int]:
    if batch_id is None:
        log.info("nothing landed in this interval; nothing to publish")
        return {}
    with warehouse.connect() as conn:
        return loading.publish_batch(conn, batch_id)
