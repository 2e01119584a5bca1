"""
### Retention ingest

Daily, for each source entity (customers, orders, tickets, surveys, call_outcomes),
from the system `RETENTION_SOURCES_FILE` names for it (a shop database over SQL, the
Zendesk API, or by default the landing folder):

1. **land**: copy the files of the landing folder that are new (not in the
   `ops.loaded_files` ledger) and available for this interval, or the rows the source
   system changed since its watermark (minus an overlap), into a batch in the
   `landing` schema; rows that break a hard rule are set aside with their reason;
2. **validate**: the batch must pass its Great Expectations suite
   (`expectations/raw_<entity>.json`); a failure rejects the batch and stops here;
3. **publish**: merge the batch into `raw.<entity>` (latest `updated_at` wins) and
   the rejected rows into `quarantine.<entity>` and move the source's watermark
   (`ops.source_watermarks`), in one transaction, and emit the entity's Asset.

Re-running an interval changes nothing: published files are in the ledger.
"""

from __future__ import annotations

from datetime import timedelta

# The module behind airflow.sdk's `task`, named here so that the DAG processor imports it
# once, before it forks a process per parse ([dag_processor] parsing_pre_import_modules
# pre-imports the airflow.* modules a DAG file names; `task` itself is a lazy attribute
# of airflow.sdk): otherwise every parse of this file imports it again (about 0.2 s).
import airflow.sdk.definitions.decorators  # noqa: F401
import pendulum
from airflow.sdk import DAG, Asset, task
from airflow.timetables.interval import CronDataIntervalTimetable

from retention_pipeline.alerts import on_failure
from retention_pipeline.config import get_settings
from retention_pipeline.entities import ENTITIES
from retention_pipeline.weeks import DAILY_CRON

settings = get_settings()

RAW_ASSETS = {name: Asset(f"retention://warehouse/raw/{name}") for name in ENTITIES}

with DAG(
    dag_id="retention_ingest",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable(DAILY_CRON, timezone=settings.timezone),
    start_date=pendulum.datetime(2024, 1, 1, tz=settings.timezone),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2), "on_failure_callback": on_failure},
    tags=["retention", "ingest"],
):
    for entity_name in ENTITIES:

        @task(task_id=f"land_{entity_name}")
        def land(entity: str, data_interval_start=None, data_interval_end=None) -> int | None:  # type: ignore[no-untyped-def]
            from retention_pipeline.ingest_tasks import land_entity

            return land_entity(entity, data_interval_start, data_interval_end)

        # a failed quality gate is a fact about the data, not a glitch: no retry
        @task(task_id=f"validate_{entity_name}", retries=0)
        def validate(batch_id: int | None, run_id=None) -> int | None:  # type: ignore[no-untyped-def]
            from retention_pipeline.ingest_tasks import validate_batch

            return validate_batch(batch_id, run_id)

        @task(task_id=f"publish_{entity_name}", outlets=[RAW_ASSETS[entity_name]])
        def publish(batch_id: int | None) -> dict[str, int]:
            from retention_pipeline.ingest_tasks import publish

            return publish(batch_id)

        publish(validate(land(entity_name)))
