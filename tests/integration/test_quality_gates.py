"""Quality gates on every step, and marts BI only sees after they pass (write-audit-publish).

Everything runs on a real PostgreSQL (``warehouse_db``), real dbt, real GX, a real SMTP
server (aiosmtpd) and a real HTTP server for the webhook. Each kind of bad data is
injected where it would arise, and each test checks that the right gate stops the right
step, that ``marts`` (what BI reads) still holds the last published week, and that the
alert says what went wrong.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import psycopg
import pytest

from retention_pipeline import alerts, publish, warehouse
from retention_pipeline.config import get_settings
from retention_pipeline.dbt_config import run_dbt
from retention_pipeline.entities import ENTITIES
from retention_pipeline.ingest_tasks import land_entity, validate_batch
from retention_pipeline.ingest_tasks import publish as publish_batch
from retention_pipeline.quality import QualityGateFailed, load_suite_file
from retention_pipeline.weekly_tasks import SourcesNotReady, check_sources, gate_marts
from retention_pipeline.weeks import week_interval

pytestmark = pytest.mark.integration

W46, W47 = "2026-W46", "2026-W47"


# --- real servers ----------------------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(msg)  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def alert_channels(
    monkeypatch: pytest.MonkeyPatch, json_receiver, free_port
) -> Iterator[tuple[Inbox, list[dict[str, Any]]]]:
    """A real SMTP server and a real webhook receiver on loopback, wired in as the alert channels."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_RETENTION_ALERT_SMTP", f"smtp://127.0.0.1:{port}?disable_tls=true&disable_ssl=true"
    )
    monkeypatch.setenv("RETENTION_SMTP_CONN_ID", "retention_alert_smtp")
    monkeypatch.setenv("RETENTION_ALERT_RECIPIENTS", "data-team@company.test")
    monkeypatch.setenv("RETENTION_ALERT_WEBHOOK_URL", json_receiver.url)
    try:
        yield inbox, json_receiver.received
    finally:
        controller.stop()


def _alert(exc: BaseException, task_id: str, week: str) -> None:
    start, end = week_interval(week)
    alerts.deliver(
        alerts.build_alert(
            dag_id="retention_weekly",
            task_id=task_id,
            run_id=f"test__{week}",
            interval_start=start,
            interval_end=end,
            exception=exc,
        )
    )


# --- helpers -----------------------------------------------------------------------------


def _sql(query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with warehouse.connect() as conn:
        rows = (
            conn.execute(query, params).fetchall()
            if query.lstrip().lower().startswith(("select", "with"))
            else []
        )
        if not rows:
            conn.execute(query, params)
        conn.commit()
        return rows


def _exec(query: str, params: tuple[Any, ...] = ()) -> int:
    with warehouse.connect() as conn:
        count = conn.execute(query, params).rowcount
        conn.commit()
        return count


def _ingest_sample(customers: int = 300) -> None:
    from retention_pipeline.sample_data import generate

    generate(Path(os.environ["RETENTION_LANDING_DIR"]), end=date(2026, 11, 23), seed=7, customers=customers)
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC)
    for entity in ENTITIES:
        publish_batch(validate_batch(land_entity(entity, start, end), "test"))


def _build(week: str) -> dict[str, int]:
    """The weekly DAG's steps up to the gate, in order, as the tasks run them."""
    start, end = week_interval(week)
    check_sources(start, end)
    publish.prepare_build()
    run_dbt(["build", "--quiet"], vars_={"as_of": end.isoformat(), **publish.DBT_BUILD_VARS})
    return gate_marts(start, f"test__{week}")


def _published_weeks() -> str:
    return str(_sql("select max(iso_week) from marts.rpt_weekly_kpis")[0][0])


# --- the real flow: dbt, GX, drift, publish ------------------------------------------------


def test_each_kind_of_bad_marts_stops_at_the_gate_and_bi_keeps_last_week(warehouse_db, alert_channels):
    inbox, hooks = alert_channels
    _ingest_sample()
    quality = _build(W46)
    assert quality["expectations"] > 20
    publish.publish_marts(W46)
    assert _published_weeks() == W46
    kpis_w46 = _sql("select * from marts.rpt_weekly_kpis order by iso_week")
    customers_w46 = _sql("select count(*) from marts.dim_customers")[0][0]

    # this week's build lands in marts_build; BI still reads W46
    _build(W47)
    assert _published_weeks() == W46
    assert _sql("select max(iso_week) from marts_build.rpt_weekly_kpis") == [(W47,)]

    # duplicates (a fan-out join): the GX gate names the check and the count
    _exec(
        "insert into marts_build.dim_customers select * from marts_build.dim_customers "
        "order by customer_id limit 3"
    )
    with pytest.raises(QualityGateFailed) as dup:
        gate_marts(week_interval(W47)[0], "test__dup")
    assert "expect_column_values_to_be_unique" in str(dup.value)
    assert "marts_build.dim_customers.customer_id: 6 of" in str(dup.value)
    # the one failure's details sit in the result of the whole suite: every expectation
    # is reported, the failed one with its count, on one Data Docs page
    (dup_result,) = dup.value.results
    assert dup_result.evaluated == len(load_suite_file("marts_dim_customers")["expectations"])
    assert [f.unexpected_count for f in dup_result.findings] == [6]
    dup_page = Path(unquote(dup_result.page_url.removeprefix("file://"))).read_text()
    assert "6 unexpected values found" in dup_page
    _alert(dup.value, "gate_marts", W47)
    _exec(
        "delete from marts_build.dim_customers a using marts_build.dim_customers b "
        "where a.customer_id = b.customer_id and a.ctid > b.ctid"
    )

    # nulls in a key
    nulled = [
        r[0] for r in _sql("select customer_id from marts_build.rpt_call_list order by call_rank limit 2")
    ]
    _exec("update marts_build.rpt_call_list set customer_id = null where customer_id = any(%s)", (nulled,))
    with pytest.raises(QualityGateFailed) as nulls:
        gate_marts(week_interval(W47)[0], "test__nulls")
    assert "expect_column_values_to_not_be_null" in str(nulls.value)
    assert "marts_build.rpt_call_list.customer_id: 2 of" in str(nulls.value)
    _exec("delete from marts_build.rpt_call_list where customer_id is null")

    # a stage distribution jump against the last published week: the drift check stops it
    moved = _exec("update marts_build.dim_customers set churn_stage = 'churned' where churn_stage = 'active'")
    assert moved > 0
    with pytest.raises(QualityGateFailed) as jump:
        gate_marts(week_interval(W47)[0], "test__jump")
    assert "stage_share:churned" in str(jump.value) and "in 2026-W46" in str(jump.value)
    _alert(jump.value, "gate_marts", W47)

    # a failed gate publishes nothing: BI reads last week's marts, whole
    assert _published_weeks() == W46
    assert _sql("select * from marts.rpt_weekly_kpis order by iso_week") == kpis_w46
    assert _sql("select count(*) from marts.dim_customers")[0][0] == customers_w46

    # the data team heard about both failures, by mail and by webhook, with names and counts
    assert len(inbox.messages) == 2 and len(hooks) == 2
    first, second = inbox.messages
    assert (
        first["Subject"].strip()
        == "[retention] retention_weekly.gate_marts failed for 2026-W47: 1 failed check"
    )
    body = first.get_content()
    assert "Interval: 2026-11-16T00:00:00+00:00 .. 2026-11-23T00:00:00+00:00" in body
    assert "expect_column_values_to_be_unique failed on marts_build.dim_customers.customer_id: 6 of" in body
    assert "Data Docs (marts_dim_customers): file://" in body
    assert "stage_share:churned" in second.get_content()
    assert "stage_share:churned" in hooks[1]["text"] and "retention_weekly.gate_marts" in hooks[1]["text"]
    page = body.split("Data Docs (marts_dim_customers): file://")[1].split()[0]
    assert Path(unquote(page)).is_file() and "/validations/marts_dim_customers/" in page
    # every gate's page stays (each gate runs in its own GX context), last week's too
    docs = Path(os.environ["RETENTION_OUTBOX_DIR"]) / "data_docs" / "validations"
    pages = {p.relative_to(docs).parts[:2] for p in docs.rglob("*.html")}
    assert ("marts_dim_customers", "test__2026-W46 marts_dim_customers") in pages
    assert ("marts_rpt_call_list", "test__nulls marts_rpt_call_list") in pages
    # and the site's index links every one of them, not only the last gate's
    index = (docs.parent / "index.html").read_text()
    linked = {unquote(href) for href in re.findall(r"'_table_row_link_path': '(validations/[^']+)'", index)}
    assert linked == {p.relative_to(docs.parent).as_posix() for p in docs.rglob("*.html")}
    assert len(linked) >= 5
    # the failed gates' second, detailed validations left no result of their own behind
    assert not list((docs.parent / "results").glob("* details"))

    # the clean build of the week passes and is published in one swap; W46 is kept aside
    _build(W47)
    publish.publish_marts(W47)
    assert _published_weeks() == W47
    assert _sql("select max(iso_week) from marts_previous.rpt_weekly_kpis") == [(W46,)]
    assert _sql("select count(*) from ops.mart_run_stats where iso_week = %s", (W47,))[0][0] > 5


def test_a_broken_dbt_model_or_bad_source_rows_stop_the_build_before_publish(
    warehouse_db, tmp_path, monkeypatch
):
    _ingest_sample(customers=200)
    _build(W46)
    publish.publish_marts(W46)
    _start, end = week_interval(W47)

    # a broken model in the marts folder (a copy of the project, so the real one is untouched)
    project = tmp_path / "dbt_project"
    real = get_settings().dbt_project_dir
    shutil.copytree(real, project, ignore=shutil.ignore_patterns("target", "logs"))
    (project / "models" / "marts" / "rpt_broken.sql").write_text(
        "select customer_id, 1 / (orders_count - orders_count) as boom from {{ ref('dim_customers') }}\n"
    )
    monkeypatch.setenv("RETENTION_DBT_PROJECT_DIR", str(project))
    publish.prepare_build()
    with pytest.raises(subprocess.CalledProcessError):
        run_dbt(["build", "--quiet"], vars_={"as_of": end.isoformat(), **publish.DBT_BUILD_VARS})
    assert _published_weeks() == W46
    monkeypatch.setenv("RETENTION_DBT_PROJECT_DIR", str(real))

    # negative amounts behind the loader's back (a buggy upstream fix, under a batch id of
    # its own, as every change to raw must be marked for the incremental models): dbt's
    # tests stop it
    _exec(
        "update raw.orders set amount = -amount, _batch_id = (select max(_batch_id) + 1 from raw.orders) "
        "where order_id in "
        "(select order_id from raw.orders where status = 'completed' order by order_id limit 5)"
    )
    publish.prepare_build()
    with pytest.raises(subprocess.CalledProcessError):
        run_dbt(["build", "--quiet"], vars_={"as_of": end.isoformat(), **publish.DBT_BUILD_VARS})
    assert _published_weeks() == W46
    assert _sql("select count(*) from marts.dim_customers")[0][0] > 0


def test_staging_tests_read_the_weeks_load_batches_and_every_row_on_request(warehouse_db, tmp_path):
    """The staging tests over raw orders read the rows of the load batches of the
    build's week (macros/loaded_for_the_week.sql): a bad row is caught by the build of
    the week its batch was loaded for, not re-read by every later week's, and
    ``staging_tests_scope: all`` reads every row."""
    _ingest_sample(customers=120)  # batches of the ingest interval ending 2026-11-23
    run_dbt(["run", "--quiet", "--select", "stg_shop__orders", "stg_shop__customers"])
    targets = iter(range(10))

    def failed_tests(week: str, **extra_vars: str) -> set[str]:
        target = tmp_path / f"target{next(targets)}"
        args = ["test", "--quiet", "--select", "stg_shop__orders", "--exclude", "test_type:unit"]
        with contextlib.suppress(subprocess.CalledProcessError):  # a failed test: read below
            run_dbt(
                [*args, "--target-path", str(target)],
                vars_={"as_of": week_interval(week)[1].isoformat(), **extra_vars},
            )
        results = json.loads((target / "run_results.json").read_text())["results"]
        assert results, "no test ran"
        return {r["unique_id"].split(".")[2] for r in results if r["status"] in ("fail", "error")}

    assert failed_tests(W47) == set()
    # a status no order may have, behind the loader's back, on a row of the history batch
    _exec(
        "update raw.orders set status = 'lost' where order_id = "
        "(select min(order_id) from raw.orders where status = 'completed')"
    )
    status_test = "accepted_values_stg_shop__orders_status__completed__cancelled__refunded"
    # the week the batch was loaded for reads it; the week after does not, unless asked
    assert failed_tests(W47) == {status_test}
    assert failed_tests("2026-W48") == set()
    assert failed_tests("2026-W48", staging_tests_scope="all") == {status_test}
    # a batch of W48's ingest runs (here, a correction marked with a batch of its own)
    _exec(
        "insert into ops.load_batches (entity, source, interval_start, interval_end, status, started_at) "
        "values ('orders', 'test', '2026-11-29', '2026-11-30', 'published', '2026-11-30')"
    )
    _exec(
        "update raw.orders set status = 'lost', _batch_id = (select max(batch_id) from ops.load_batches) "
        "where order_id = (select max(order_id) from raw.orders where status = 'completed')"
    )
    assert failed_tests("2026-W48") == {status_test}
    # a scope of neither kind stops every such test
    assert len(failed_tests("2026-W48", staging_tests_scope="some")) == 3


def test_nulls_in_a_marts_required_columns_fail_one_test_naming_each_column_and_count(warehouse_db):
    _ingest_sample(customers=120)
    _start, end = week_interval(W46)
    publish.prepare_build()
    dbt_vars = {"as_of": end.isoformat(), **publish.DBT_BUILD_VARS}
    build = ["build", "--quiet", "--select", "+dim_customers", "--indirect-selection", "cautious"]
    run_dbt(build, vars_=dbt_vars)
    test = ["test", "--quiet", "--select", "not_null_columns_dim_customers", "--store-failures"]
    run_dbt(test, vars_=dbt_vars)  # the real build passes it

    _exec(
        "update marts_build.dim_customers set value_tier = null where customer_id in "
        "(select customer_id from marts_build.dim_customers order by customer_id limit 3)"
    )
    _exec(
        "update marts_build.dim_customers set tickets_count = null where customer_id = "
        "(select max(customer_id) from marts_build.dim_customers)"
    )
    with pytest.raises(subprocess.CalledProcessError):
        run_dbt(test, vars_=dbt_vars)
    # what --store-failures keeps: the columns and their counts, no customer's data
    assert _sql(
        "select column_name, null_rows from dbt_test__audit.not_null_columns_dim_customers order by 1"
    ) == [("tickets_count", 1), ("value_tier", 3)]


def test_freshness_is_judged_at_the_weeks_end_so_a_backfill_passes_and_a_stale_source_stops(
    warehouse_db, alert_channels
):
    inbox, hooks = alert_channels
    _ingest_sample(customers=150)
    start, end = week_interval(W47)
    # loaded "today" (after the week ended): fresh for that week, however old the week is
    _exec("update raw.orders set _loaded_at = %s", (datetime(2026, 12, 20, tzinfo=UTC),))
    _exec("analyze raw.orders")
    seen = check_sources(start, end)
    rows = _sql("select count(*) from raw.orders")[0][0]
    newest = _sql("select max(ordered_at) from raw.orders where ordered_at < %s", (end,))[0][0]
    assert seen["orders"].startswith(f"~{rows} rows (planner estimate), newest load 2026-12-20")
    assert seen["orders"].endswith(f"newest order before the week's end {newest}")

    # no order in the allowed lag (48 h) before the week's end: stale by event time,
    # whenever it was loaded, and the message says how old the newest order is
    _exec("delete from raw.orders where ordered_at >= %s", (end - timedelta(hours=60),))
    newest = _sql("select max(ordered_at) from raw.orders")[0][0]
    with pytest.raises(SourcesNotReady) as late:
        check_sources(start, end)
    assert f"raw.orders is stale: newest order {newest.isoformat()} is more than 48 h" in str(late.value)

    # the loader stopped ten days before the week's end: dbt's error_after (8 days) at the week's end
    _exec("update raw.orders set _loaded_at = %s", (datetime(2026, 11, 13, tzinfo=UTC),))
    with pytest.raises(SourcesNotReady) as stale:
        check_sources(start, end)
    assert "raw.orders is stale: newest load 2026-11-13" in str(stale.value)
    assert "240 h before the week's end" in str(stale.value)
    _alert(stale.value, "check_sources", W47)
    assert "raw.orders is stale" in inbox.messages[-1].get_content()
    assert "raw.orders is stale" in hooks[-1]["text"]


def test_a_business_timezone_east_of_utc_gets_its_own_weeks_and_days(warehouse_db, monkeypatch):
    """Berlin's 2026-W47 runs from 2026-11-15 23:00 UTC to 2026-11-22 23:00 UTC: the marts
    must label it W47 from Monday 2026-11-16 (taken on the UTC calendar, as_of - 7 days
    is a Sunday, the week was labelled W46 and the gate found no row for W47)."""
    zone = "Europe/Berlin"
    monkeypatch.setenv("RETENTION_TIMEZONE", zone)
    _ingest_sample(customers=200)
    start, end = week_interval(W47, zone)
    check_sources(start, end)
    publish.prepare_build()
    run_dbt(["build", "--quiet"], vars_={"as_of": end.isoformat(), **publish.DBT_BUILD_VARS})
    gate_marts(start, f"test__{W47}__berlin")

    weeks = "select iso_week, week_start::text, week_end::text from marts_build.{} where iso_week = %s"
    for mart in ("rpt_weekly_kpis", "rpt_stage_transitions"):
        assert _sql(weeks.format(mart), (W47,))[:1] == [(W47, "2026-11-16", "2026-11-23")], mart
    assert _sql("select distinct iso_week, week_start::text from marts_build.fct_customer_weekly_status") == [
        (W47, "2026-11-16")
    ]
    assert _sql("select max(month_start)::text from marts_build.rpt_monthly_kpis") == [("2026-11-01",)]
    # an order day is a Berlin day: those placed late in the evening UTC count on the next date
    days = _sql(
        "select count(*) filter (where ordered_date <> (ordered_at at time zone 'Europe/Berlin')::date), "
        "count(*) filter (where ordered_date <> (ordered_at at time zone 'UTC')::date) "
        "from staging.stg_shop__orders"
    )
    assert days[0][0] == 0 and days[0][1] > 0


# --- publish mechanics ----------------------------------------------------------------------


def _make_marts(schema: str, customers: list[tuple[str, str]], week: str, revenue: float) -> None:
    _exec(f"create schema if not exists {schema}")
    _exec(f"create table {schema}.dim_customers (customer_id text primary key, churn_stage text)")
    with warehouse.connect() as conn:
        with conn.cursor() as cur:
            cur.executemany(f"insert into {schema}.dim_customers values (%s, %s)", customers)
        conn.execute(
            f"create table {schema}.rpt_weekly_kpis as select %s::text as iso_week, %s::numeric as revenue",
            (week, revenue),
        )
        conn.commit()


def _customers(active: int, churned: int) -> list[tuple[str, str]]:
    return [(f"c{i:04d}", "active") for i in range(active)] + [
        (f"c{i:04d}", "churned") for i in range(active, active + churned)
    ]


@pytest.fixture
def bi_role(warehouse_db) -> Iterator[str]:
    role = f"rt_bi_{uuid.uuid4().hex[:8]}"
    _exec(f"create role {role} nologin")
    yield role
    _exec(f"drop owned by {role}")
    _exec(f"drop role {role}")


def test_publish_swaps_in_one_transaction_keeps_previous_and_reapplies_grants(warehouse_db, bi_role):
    _make_marts("marts", _customers(80, 20), W46, 1000)
    _exec(f"grant usage on schema marts to {bi_role}")
    _exec(f"grant select on all tables in schema marts to {bi_role}")
    _make_marts("marts_build", _customers(78, 22), W47, 1100)
    _exec("create table marts_build.rpt_new_report as select 1 as x")

    publish.publish_marts(W47)

    assert _sql("select iso_week from marts.rpt_weekly_kpis") == [(W47,)]
    assert _sql("select iso_week from marts_previous.rpt_weekly_kpis") == [(W46,)]
    assert _sql("select count(*) from pg_namespace where nspname = 'marts_build'") == [(0,)]
    assert _sql(
        "select has_schema_privilege(%s, 'marts', 'usage'), "
        "has_table_privilege(%s, 'marts.dim_customers', 'select'), "
        "has_table_privilege(%s, 'marts.rpt_new_report', 'select')",
        (bi_role, bi_role, bi_role),
    ) == [(True, True, True)]
    # a retry of the task after it committed changes nothing
    assert publish.publish_marts(W47)["previous"] == ""
    assert _sql("select iso_week from marts_previous.rpt_weekly_kpis") == [(W46,)]
    stats = dict(_sql("select metric, value from ops.mart_run_stats where iso_week = %s", (W47,)))
    assert stats["rows:dim_customers"] == 100 and stats["revenue"] == 1100
    assert float(stats["stage_share:churned"]) == 22.0


def test_views_outside_the_marts_switch_to_the_new_tables_in_the_same_swap(warehouse_db, bi_role):
    _make_marts("marts", _customers(10, 0), W46, 10)
    _exec("create schema bi")
    _exec("create view bi.weekly_revenue as select iso_week, revenue from marts.rpt_weekly_kpis")
    _exec("create view bi.customer_count as select count(*) as customers from marts.dim_customers")
    _exec("create view bi.customer_ids as select customer_id from marts.dim_customers")
    _exec(f"grant select on bi.weekly_revenue to {bi_role}")

    for week, revenue, customers in ((W47, 11, 11), ("2026-W48", 12, 12)):
        _make_marts("marts_build", _customers(10, customers - 10), week, revenue)
        publish.publish_marts(week)
        # the view reads the published week, not the tables it was created on
        assert _sql("select iso_week, revenue from bi.weekly_revenue") == [(week, revenue)]
        assert _sql("select customers from bi.customer_count") == [(customers,)]
        assert _sql("select has_table_privilege(%s, 'bi.weekly_revenue', 'select')", (bi_role,)) == [(True,)]

    # a view whose columns no longer exist cannot follow: the swap is refused, nothing changes
    _make_marts("marts_build", _customers(10, 3), "2026-W49", 13)
    _exec("alter table marts_build.dim_customers rename column customer_id to id")
    with pytest.raises(publish.PublishBlocked, match=r"bi\.customer_ids"):
        publish.publish_marts("2026-W49")
    assert _sql("select iso_week from marts.rpt_weekly_kpis") == [("2026-W48",)]
    assert _sql("select iso_week from marts_build.rpt_weekly_kpis") == [("2026-W49",)]


def test_prepare_build_carries_the_published_history_of_incremental_models(warehouse_db, tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "nodes": {
                    "model.retention.fct_history": {
                        "resource_type": "model",
                        "name": "fct_history",
                        "alias": "fct_history",
                        "config": {"materialized": "incremental", "schema": "marts"},
                    },
                    "model.retention.dim_x": {
                        "resource_type": "model",
                        "name": "dim_x",
                        "alias": "dim_x",
                        "config": {"materialized": "table", "schema": "marts"},
                    },
                    "model.retention.int_y": {
                        "resource_type": "model",
                        "name": "int_y",
                        "alias": "int_y",
                        "config": {"materialized": "incremental", "schema": "intermediate"},
                    },
                }
            }
        )
    )
    assert publish.incremental_marts(manifest) == ["fct_history"]
    assert publish.history_week_columns(manifest) == {}
    _exec("create schema marts")
    _exec("create table marts.fct_history (week text, customer_id text, primary key (week, customer_id))")
    _exec("insert into marts.fct_history values ('2026-W45', 'a'), ('2026-W46', 'a'), ('2026-W46', 'b')")
    _exec("create schema marts_build")
    _exec("create table marts_build.leftover_of_a_failed_run as select 1 as x")

    # an incremental mart that does not say how it is keyed by week is carried whole
    assert publish.prepare_build(["fct_history"], week_columns={}) == {"fct_history": 3}
    assert _sql("select count(*) from marts_build.fct_history") == [(3,)]
    assert _sql("select to_regclass('marts_build.leftover_of_a_failed_run')") == [(None,)]
    # the copy has the key too: the week dbt appends there is checked for one row per key
    assert _sql(
        "select count(*) from pg_indexes where schemaname = 'marts_build' and tablename = 'fct_history'"
    ) == [(1,)]


def _history_rows(schema: str) -> list[tuple[Any, ...]]:
    return _sql(f"select week_start::text, customer_id, churn_stage from {schema}.fct_weekly order by 1, 2")


def _partitions(table: str) -> list[tuple[str, str]]:
    return _sql(
        "select c.relname, pg_get_expr(c.relpartbound, c.oid) from pg_inherits i "
        "join pg_class c on c.oid = i.inhrelid where i.inhparent = %s::regclass order by 1",
        (table,),
    )


def _build_week(rows: str) -> int:
    """What dbt writes in the build for a week: a table of the published one's shape (the
    model's contract gives every week's table the same columns and constraints)."""
    _exec("create table marts_build.fct_weekly (like marts.fct_weekly including all)")
    _exec(
        f"insert into marts_build.fct_weekly (customer_id, week_start, churn_stage, value_tier) values {rows}"
    )
    return int(_sql("select 'marts_build.fct_weekly'::regclass::oid")[0][0])


def test_a_weekly_history_is_built_a_week_at_a_time_and_published_as_partitions(warehouse_db, bi_role):
    """The build holds only the run's week (so dbt writes, and the gate audits, one week);
    the publish makes that week a partition of the published table, which stays where it
    is. A history published before partitioning becomes one on its next publish."""
    history = {"fct_weekly": "week_start"}
    _make_marts("marts", _customers(3, 1), W46, 1000)
    _exec(
        "create table marts.fct_weekly (customer_id text not null, week_start date not null, "
        "churn_stage text check (churn_stage <> 'bogus'))"
    )
    _exec("create unique index on marts.fct_weekly (week_start, customer_id)")
    _exec(
        "insert into marts.fct_weekly values ('a', '2026-11-02', 'active'), ('a', '2026-11-09', 'active'), "
        "('b', '2026-11-09', 'churned'), ('gone', '2026-11-09', 'active')"
    )
    _exec(f"grant usage on schema marts to {bi_role}")
    _exec(f"grant select on all tables in schema marts to {bi_role}")
    _exec("create schema if not exists bi")
    _exec("create view bi.weekly_stages as select week_start, churn_stage from marts.fct_weekly")

    # a re-run of the published week 2026-11-09: the build has no table of the history, so
    # dbt creates it from the week's rows alone
    assert publish.prepare_build(["fct_weekly"], week_columns=history) == {"fct_weekly": 0}
    assert _sql("select to_regclass('marts_build.fct_weekly')") == [(None,)]
    # what dbt writes: the week again (one customer left the base, one changed stage), with
    # a column the model gained since
    _exec(
        "create table marts_build.fct_weekly as select * from (values ('a', date '2026-11-09', 'churned', 'A'), "
        "('b', date '2026-11-09', 'active', 'B')) as week (customer_id, week_start, churn_stage, value_tier)"
    )
    _make_marts("marts_build", _customers(3, 1), W47, 1000)

    assert publish.publish_marts(W47, week_columns=history)["history_rows_merged"] == "fct_weekly=2"

    assert _history_rows("marts") == [
        ("2026-11-02", "a", "active"),
        ("2026-11-09", "a", "churned"),
        ("2026-11-09", "b", "active"),
    ]
    assert _sql("select value_tier from marts.fct_weekly order by week_start, customer_id") == [
        (None,),
        ("A",),
        ("B",),
    ]
    # the old table is now the partition of the weeks it held (the re-run's week merged
    # into it), next to a default one; the partitioned table took its name, grants, key
    # and checks, and BI's view reads it
    assert _sql("select relkind::text from pg_class where oid = 'marts.fct_weekly'::regclass") == [("p",)]
    assert _partitions("marts.fct_weekly") == [
        ("fct_weekly__2026_11_02_to_2026_11_09", "FOR VALUES IN ('2026-11-02', '2026-11-09')"),
        ("fct_weekly__default", "DEFAULT"),
    ]
    assert _sql("select to_regclass('marts_previous.fct_weekly')") == [(None,)]
    assert _sql("select has_table_privilege(%s, 'marts.fct_weekly', 'select')", (bi_role,)) == [(True,)]
    with pytest.raises(psycopg.errors.UniqueViolation):
        _exec("insert into marts.fct_weekly (customer_id, week_start) values ('a', '2026-11-02')")
    with pytest.raises(psycopg.errors.CheckViolation):
        _exec(
            "insert into marts.fct_weekly (customer_id, week_start, churn_stage) values ('z', '2026-11-30', 'bogus')"
        )

    # a new week: its build table becomes the week's partition, no row copied
    _make_marts("marts_build", _customers(3, 1), "2026-W48", 1000)
    built = _build_week("('a', '2026-11-16', 'active', 'A'), ('c', '2026-11-16', 'active', 'C')")
    assert publish.publish_marts("2026-W48", week_columns=history)["history_rows_merged"] == "fct_weekly=2"
    assert _sql("select 'marts_weeks.fct_weekly__2026_11_16'::regclass::oid") == [(built,)]
    assert ("fct_weekly__2026_11_16", "FOR VALUES IN ('2026-11-16')") in _partitions("marts.fct_weekly")
    assert _sql("select count(*) from bi.weekly_stages") == [(5,)]

    # a re-run of that week replaces its partition; rows of the week that dbt wrote straight
    # into the published table (the default partition) are replaced too
    _exec(
        "insert into marts.fct_weekly (customer_id, week_start, churn_stage) values ('d', '2026-11-23', 'active')"
    )
    for week, start in (("2026-W48", "2026-11-16"), ("2026-W49", "2026-11-23")):
        _make_marts("marts_build", _customers(3, 1), week, 1000)
        built = _build_week(f"('a', '{start}', 'churned', 'A')")
        assert publish.publish_marts(week, week_columns=history)["history_rows_merged"] == "fct_weekly=1"
        assert _sql(f"select 'marts_weeks.fct_weekly__{start.replace('-', '_')}'::regclass::oid") == [
            (built,)
        ]
    assert _history_rows("marts")[-2:] == [("2026-11-16", "a", "churned"), ("2026-11-23", "a", "churned")]
    assert _sql("select count(*) from marts_weeks.fct_weekly__default") == [(0,)]
    assert [name for name, _ in _partitions("marts.fct_weekly")] == [
        "fct_weekly__2026_11_02_to_2026_11_09",
        "fct_weekly__2026_11_16",
        "fct_weekly__2026_11_23",
        "fct_weekly__default",
    ]

    # a build that has no table of the history (it is not carried) leaves it published as is
    _make_marts("marts_build", _customers(3, 1), "2026-W50", 1000)
    publish.publish_marts("2026-W50", week_columns=history)
    assert len(_history_rows("marts")) == 5


def test_a_weekly_history_published_for_the_first_time_is_partitioned_by_week(warehouse_db):
    history = {"fct_weekly": "week_start"}
    _make_marts("marts_build", _customers(3, 1), W47, 1000)
    _exec(
        "create table marts_build.fct_weekly as select * from (values ('a', date '2026-11-16', 'active'), "
        "('b', date '2026-11-16', 'churned')) as week (customer_id, week_start, churn_stage)"
    )
    built = _sql("select 'marts_build.fct_weekly'::regclass::oid")[0][0]

    publish.publish_marts(W47, week_columns=history)

    assert _sql("select relkind::text from pg_class where oid = 'marts.fct_weekly'::regclass") == [("p",)]
    assert _partitions("marts.fct_weekly") == [
        ("fct_weekly__2026_11_16", "FOR VALUES IN ('2026-11-16')"),
        ("fct_weekly__default", "DEFAULT"),
    ]
    assert _sql("select 'marts_weeks.fct_weekly__2026_11_16'::regclass::oid") == [(built,)]
    assert _history_rows("marts") == [("2026-11-16", "a", "active"), ("2026-11-16", "b", "churned")]


def test_the_real_projects_incremental_marts_are_found_in_its_manifest():
    from retention_pipeline.dbt_config import manifest_path

    if not manifest_path().exists():
        run_dbt(["parse", "--quiet"])
    data = json.loads(manifest_path().read_text())
    expected = sorted(
        n["alias"]
        for n in data["nodes"].values()
        if n["resource_type"] == "model"
        and n["config"]["materialized"] == "incremental"
        and "marts" in n["fqn"]
    )
    assert publish.incremental_marts() == expected
    # the weekly status history is built a week at a time (publish merges the week)
    assert publish.history_week_columns() == {"fct_customer_weekly_status": "week_start"}


def test_drift_bounds_error_stops_warning_reports(warehouse_db):
    _make_marts("marts_build", _customers(80, 20), W46, 1000)
    publish.publish_marts(W46)
    bounds = publish.DriftBounds(
        max_rowcount_change=0.5,
        max_revenue_change=1.0,
        max_stage_share_shift_pp=15,
        warning_ratio=0.5,
        min_rows=50,
    )

    # 10 pp more churned: beyond half the bound, a warning only
    _make_marts("marts_build", _customers(70, 30), W47, 1200)
    result = publish.drift_check(W47, bounds)
    assert result.success and not result.errors
    assert {f.column for f in result.warnings} == {"stage_share:active", "stage_share:churned"}

    # 40 pp more churned, revenue x3 and twice the customers: errors, each named with its numbers
    _exec("drop schema marts_build cascade")
    _make_marts("marts_build", _customers(80, 120), W47, 3000)
    result = publish.drift_check(W47, bounds)
    assert not result.success
    errors = {f.column: f for f in result.errors}
    assert set(errors) == {"stage_share:active", "stage_share:churned", "revenue", "rows:dim_customers"}
    assert errors["rows:dim_customers"].observed == "100 in 2026-W46 -> 200 in 2026-W47 (change 100%)"
    assert "[critical] expect_week_over_week_change_within" in result.summary()

    # a backfill of an older week compares with the week before it, not with the latest one
    prev_week, _ = publish.previous_stats(psycopg.connect(**warehouse_db.libpq_kwargs()), "2026-W40")
    assert prev_week is None


def test_a_gates_data_docs_pages_leave_the_other_runs_results_unread(warehouse_db, tmp_path, monkeypatch):
    """The results folder holds every gate's result of every run, so a gate's pages must
    not cost more with each week kept; the index still lists them all."""
    from great_expectations.data_context.store.tuple_store_backend import TupleFilesystemStoreBackend

    from retention_pipeline.quality import RESULTS_SUBDIR, build_docs_index, run_gate

    with warehouse.connect() as conn:
        conn.execute(
            """create schema if not exists landing;
               create table landing.calls (attempt_id text, customer_id text, campaign text,
                   reached boolean, called_at timestamptz, updated_at timestamptz);
               insert into landing.calls values
                   ('a1', 'c1', '2026-W47', true, '2026-11-20 10:00+00', '2026-11-20 10:05+00')"""
        )
        conn.commit()

    def gate(run: int) -> Any:
        return run_gate(
            warehouse_db, "raw_call_outcomes", "landing", "calls",
            run_name=f"docs run {run}", docs_dir=tmp_path, build_index=False,
        )  # fmt: skip

    for run in (1, 2, 3):
        gate(run)
    results = tmp_path / RESULTS_SUBDIR
    assert len(list(results.rglob("*.json"))) == 3

    listed: list[str] = []
    real_list_keys = TupleFilesystemStoreBackend.list_keys

    def spying_list_keys(self: Any, *args: Any, **kwargs: Any) -> Any:
        listed.append(str(self.full_base_directory))
        return real_list_keys(self, *args, **kwargs)

    monkeypatch.setattr(TupleFilesystemStoreBackend, "list_keys", spying_list_keys)
    fourth = gate(4)

    assert str(results) not in listed
    assert fourth.page_url and Path(unquote(fourth.page_url.removeprefix("file://"))).exists()
    monkeypatch.undo()
    index = build_docs_index(tmp_path).read_text()
    assert all(f"docs run {run}" in index for run in (1, 2, 3, 4))
