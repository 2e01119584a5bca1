"""
### Retention digest watch

Mondays at `RETENTION_DIGEST_DEADLINE_HOUR` (business timezone): was the company digest
of the ISO week that just ended sent to every distribution list? The check reads the
delivery ledger (`ops.digest_sends`), so it catches a weekly run that failed, is stuck,
never started, or succeeded without sending. When a list is missing it alerts the data
team (`RETENTION_ALERT_RECIPIENTS`, `RETENTION_ALERT_WEBHOOK_URL`) and the task fails.
"""

from __future__ import annotations

from datetime import timedelta

# The module behind airflow.sdk's `task`, named here so that the DAG processor imports it
# once, before it forks a process per parse ([dag_processor] parsing_pre_import_modules
# pre-imports the airflow.* modules a DAG file names; `task` itself is a lazy attribute
# of airflow.sdk): otherwise every parse of this file imports it again (about 0.2 s).
import airflow.sdk.definitions.decorators  # noqa: F401
import pendulum
from airflow.sdk import DAG, task
from airflow.timetables.interval import CronDataIntervalTimetable

from retention_pipeline.config import get_settings

settings = get_settings()

with DAG(
    dag_id="retention_digest_watch",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable(
        f"0 {settings.digest_deadline_hour} * * 1", timezone=settings.timezone
    ),
    start_date=pendulum.datetime(2024, 1, 1, tz=settings.timezone),
    catchup=False,
    max_active_runs=1,
    # the watch alerts itself; a retry would only repeat the alert
    default_args={"retries": 1, "retry_delay": timedelta(minutes=30)},
    tags=["retention", "digest", "alerting"],
):

    @task(retries=0)
    def check_digest_delivered(data_interval_end=None) -> dict[str, str]:  # type: ignore[no-untyped-def]
        from retention_pipeline.alerts import check_digest_delivered
        from retention_pipeline.weeks import iso_week_of

        # the run at Monday HH:00 watches the week that ended at Monday 00:00
        week = iso_week_of(data_interval_end - timedelta(days=1), settings.timezone)
        return check_digest_delivered(week, data_interval_end)

    check_digest_delivered()
