"""
### Retention weekly

Runs every Monday for the ISO week that just ended (the data interval *is* that week,
in `RETENTION_TIMEZONE`; dbt's `as_of` is the interval end):

1. **check_sources**: every raw entity has data, the orders reach into the week, and
   dbt's source freshness holds at the week's end;
2. **prepare_marts_build**: an empty `marts_build` schema; a weekly history mart gets
   an empty table of its published shape (dbt writes only this week there);
3. **dbt** (Cosmos, rendered from the prebuilt manifest): seeds, staging,
   intermediate and marts (into `marts_build`), each model followed by its tests, so a
   failing test stops what depends on it;
4. **gate_marts**: `marts_build` must pass its Great Expectations suites and the
   week-over-week drift checks;
5. **publish_marts**: `marts_build` becomes `marts` in one transaction, the audited
   week merged into the published weekly history (write-audit-publish: BI never sees
   marts that did not pass);
6. then, in parallel, **send_digest** (the company digest, once per week, ledgered)
   and **push_call_list** (the call list to the outreach sinks, ledgered).

Nothing leaves the warehouse unless every step before it passed; a failed task alerts
the data team (`RETENTION_ALERT_RECIPIENTS`, `RETENTION_ALERT_WEBHOOK_URL`).
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
from cosmos import DbtTaskGroup

from retention_pipeline.alerts import on_failure
from retention_pipeline.config import get_settings
from retention_pipeline.dbt_config import DBT_TASK_GLOBAL_FLAGS, cosmos_configs, export_dbt_env
from retention_pipeline.publish import DBT_BUILD_VARS
from retention_pipeline.weeks import WEEKLY_CRON

settings = get_settings()

MARTS = Asset("retention://warehouse/marts")

with DAG(
    dag_id="retention_weekly",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable(WEEKLY_CRON, timezone=settings.timezone),
    start_date=pendulum.datetime(2024, 1, 1, tz=settings.timezone),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=5), "on_failure_callback": on_failure},
    tags=["retention", "weekly", "digest", "outreach"],
):

    @task
    def check_sources(data_interval_start=None, data_interval_end=None) -> dict[str, str]:  # type: ignore[no-untyped-def]
        from retention_pipeline.weekly_tasks import check_sources

        return check_sources(data_interval_start, data_interval_end)

    dbt_build = DbtTaskGroup(
        group_id="dbt",
        operator_args={
            "vars": {"as_of": "{{ data_interval_end.isoformat() }}", **DBT_BUILD_VARS},
            "install_deps": False,
            "dbt_cmd_global_flags": DBT_TASK_GLOBAL_FLAGS,
        },
        default_args={"retries": 0, "on_execute_callback": export_dbt_env, "on_failure_callback": on_failure},
        **cosmos_configs(),
    )

    @task
    def prepare_marts_build() -> dict[str, int]:
        from retention_pipeline.weekly_tasks import prepare_marts_build

        return prepare_marts_build()

    # a failed quality gate is a fact about the data, not a glitch: no retry
    @task(retries=0)
    def gate_marts(data_interval_start=None, run_id=None) -> dict[str, int]:  # type: ignore[no-untyped-def]
        from retention_pipeline.weekly_tasks import gate_marts

        return gate_marts(data_interval_start, run_id)

    @task(outlets=[MARTS])
    def publish_marts(data_interval_start=None) -> dict[str, str]:  # type: ignore[no-untyped-def]
        from retention_pipeline.weekly_tasks import publish_marts

        return publish_marts(data_interval_start)

    @task(retries=3)
    def send_digest(quality: dict[str, int], data_interval_start=None) -> dict[str, str]:  # type: ignore[no-untyped-def]
        from retention_pipeline.weekly_tasks import send_digest

        return send_digest(data_interval_start, quality)

    @task(retries=3)
    def push_call_list(data_interval_start=None) -> dict[str, str]:  # type: ignore[no-untyped-def]
        from retention_pipeline.weekly_tasks import push_call_list

        return push_call_list(data_interval_start)

    quality = gate_marts()
    published = publish_marts()
    check_sources() >> prepare_marts_build() >> dbt_build >> quality >> published
    published >> [push_call_list(), send_digest(quality)]
