"""The real DAGs, end to end: sample files -> ingest -> dbt -> gates -> digest + call list.

Airflow runs in a subprocess (``retention run``) with its own AIRFLOW_HOME, against a
fresh database on the real warehouse, and sends through a real SMTP server on loopback
(alerts also to a real HTTP server standing in for a Slack-compatible webhook). The
assertions are what a reader of the digest, a call-center lead or the data team on call
would check. Each kind of gate failure is tested against the warehouse in
tests/integration/test_quality_gates.py; here one of them stops a real weekly run.
"""

from __future__ import annotations

import csv
import os
import re
from datetime import date
from pathlib import Path

import psycopg
import pytest
from e2e_support import query, run_retention, smtp_conn_uri

from retention_pipeline.sample_data import generate

pytestmark = pytest.mark.e2e

WEEKS = ("2026-W46", "2026-W47")
END = date(2026, 11, 23)  # the Monday after 2026-W47
CUSTOMERS = 800


@pytest.fixture
def pipeline_env(warehouse_db, smtp_server, json_receiver, tmp_path):
    inbox, port = smtp_server
    landing = Path(os.environ["RETENTION_LANDING_DIR"])
    generate(landing, end=END, seed=7, customers=CUSTOMERS, daily_from=date(2026, 11, 9))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW_CONN_SMTP_DEFAULT": smtp_conn_uri(port),
        "RETENTION_DIGEST_RECIPIENTS": "all@company.test",
        "RETENTION_ALERT_RECIPIENTS": "data-team@company.test",
        "RETENTION_ALERT_WEBHOOK_URL": json_receiver.url,
        "RETENTION_CALL_LIST_CAPACITY": "50",
    }
    return env, inbox, json_receiver.received


def test_two_weeks_end_to_end_a_rerun_sends_nothing_twice_and_a_failed_gate_sends_nothing(
    warehouse_db, pipeline_env
):
    env, inbox, hooks = pipeline_env
    for week in WEEKS:
        done = run_retention(env, "run", "--week", week)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    # one digest per week, to the distribution list, subject carrying the week and churn
    assert [m["Subject"] for m in inbox.messages] and len(inbox.messages) == 2
    assert all(rcpts == ["all@company.test"] for _, rcpts in inbox.envelopes)
    digest = inbox.messages[-1]
    assert "2026-W47" in digest["Subject"]
    kpi = query(
        warehouse_db,
        "select active_customers, churn_rate, new_customers from marts.rpt_weekly_kpis where iso_week = '2026-W47'",
    )
    assert kpi, "the KPI mart has the reported week"
    active, churn_rate, _new = kpi[0]
    assert f"{float(churn_rate) * 100:.1f}%" in digest["Subject"]

    # the weekly status history holds both weeks (each run built only its own week and
    # the publish attached it as the week's partition), the last one every customer with orders
    history_sql = "select iso_week, count(*) from marts.fct_customer_weekly_status group by 1 order by 1"
    history = query(warehouse_db, history_sql)
    assert [week for week, _ in history] == list(WEEKS)
    partitions_sql = (
        "select c.relname::text from pg_inherits i join pg_class c on c.oid = i.inhrelid "
        "where i.inhparent = 'marts.fct_customer_weekly_status'::regclass order by 1"
    )
    partitions = query(warehouse_db, partitions_sql)
    assert partitions == [
        ("fct_customer_weekly_status__2026_11_09",),
        ("fct_customer_weekly_status__2026_11_16",),
        ("fct_customer_weekly_status__default",),
    ]
    assert (
        history[-1][1]
        == query(warehouse_db, "select count(*) from marts.dim_customers where has_orders")[0][0]
    )

    # a text and an HTML part with the same headline numbers, images inline by CID
    assert digest.get_content_type() == "multipart/alternative"
    text = digest.get_body(("plain",)).get_content()
    html = digest.get_body(("html",)).get_content()
    assert f"{active:,}" in text and f"{active:,}" in html
    cids = {
        part["Content-ID"].strip("<>") for part in digest.walk() if part.get_content_type() == "image/png"
    }
    assert cids and all(f"cid:{cid}" in html for cid in cids)

    # no customer contact data in a mail that goes to the whole company
    contacts = query(warehouse_db, "select email, phone from raw.customers where email is not null limit 200")
    body = text + html
    assert not [e for e, p in contacts if e in body or (p and p in body)]

    # the call list: highest priority first, nobody flagged do-not-call, contact data present
    call_list = Path(env["RETENTION_OUTBOX_DIR"]) / "call_lists" / "call_list_2026-W47.csv"
    with call_list.open(encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    expected = query(warehouse_db, "select count(*) from marts.rpt_call_list")[0][0]
    assert len(rows) == min(50, expected) > 0
    ranks = [int(r["call_rank"]) for r in rows]
    assert ranks == sorted(ranks)
    dnc = {c for (c,) in query(warehouse_db, "select customer_id from raw.customers where do_not_call")}
    assert not dnc & {r["customer_id"] for r in rows}
    assert all(r["phone"] or r["email"] for r in rows)
    assert all(r["intervention_level"] in {"yellow", "amber", "orange", "red"} for r in rows)
    assert oct(call_list.stat().st_mode)[-3:] == "600"

    # the bad rows of the sample files are in quarantine with their reasons; batches reconcile
    reasons = {
        r
        for (r,) in query(
            warehouse_db, "select _reason from quarantine.orders union select _reason from quarantine.surveys"
        )
    }
    assert any("unknown status" in r for r in reasons) and any("out of range" in r for r in reasons)
    assert query(
        warehouse_db,
        "select count(*) from ops.load_batches where rows_read <> rows_loaded + rows_quarantined",
    ) == [(0,)]

    # re-running the week: same answer, no second email, the same call list
    before = call_list.read_bytes()
    done = run_retention(env, "run", "--week", "2026-W47")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert len(inbox.messages) == 2
    assert call_list.read_bytes() == before
    assert (
        query(
            warehouse_db,
            "select active_customers, churn_rate, new_customers from marts.rpt_weekly_kpis where iso_week = '2026-W47'",
        )
        == kpi
    )
    assert query(
        warehouse_db, "select count(*), count(*) filter (where status = 'sent') from ops.digest_sends"
    ) == [(2, 2)]
    assert query(warehouse_db, history_sql) == history
    # the re-run's week replaced its partition: still one per week
    assert query(warehouse_db, partitions_sql) == partitions

    # break the data behind the gates' back (as a buggy upstream fix would: written straight
    # into raw, past the loader's rules, under a batch id of its own, which is how every
    # change to raw must be marked for the incremental models to see it): the weekly run
    # must stop at a gate, name what failed, and send and push nothing
    with psycopg.connect(**warehouse_db.libpq_kwargs()) as conn:
        conn.execute("delete from ops.digest_sends where iso_week = '2026-W47'")
        conn.execute("delete from ops.outreach_pushes where iso_week = '2026-W47'")
        conn.execute(
            "update raw.orders set amount = -amount, _batch_id = (select max(_batch_id) + 1 from raw.orders) "
            "where status = 'completed' and order_id in "
            "(select order_id from raw.orders where status = 'completed' order by order_id limit 5)"
        )
    call_list.unlink()
    done = run_retention(env, "run", "--week", "2026-W47", "--skip-ingest")
    assert done.returncode != 0
    log = done.stdout + done.stderr
    assert "did not succeed" in log
    assert "net_revenue" in log or "amount" in log  # the failing check names its column
    assert len(inbox.to("all@company.test")) == 2
    assert not call_list.exists()
    assert query(warehouse_db, "select count(*) from ops.digest_sends where iso_week = '2026-W47'") == [(0,)]
    assert query(warehouse_db, "select count(*) from ops.outreach_pushes where iso_week = '2026-W47'") == [
        (0,)
    ]
    # BI still reads the week as it was published before the bad data came in
    assert (
        query(
            warehouse_db,
            "select active_customers, churn_rate, new_customers from marts.rpt_weekly_kpis where iso_week = '2026-W47'",
        )
        == kpi
    )
    assert query(warehouse_db, history_sql) == history

    # and the data team was told, by Airflow's failure callback (email and webhook), of each
    # task that failed, for which interval; the good runs before it alerted nobody
    listed = re.search(r"failed tasks: \[([^\]]*)\]", log)
    assert listed, log[-2000:]
    failed = {name.strip().strip("'") for name in listed.group(1).split(",") if name.strip()}
    alerts = inbox.to("data-team@company.test")
    assert failed and len(alerts) == len(failed) == len(hooks), [a["Subject"] for a in alerts]
    alerted = set()
    for alert in alerts:
        subject = alert["Subject"].strip()
        assert subject.startswith("[retention] retention_weekly.") and " failed for 2026-W47" in subject
        assert "Interval: 2026-11-16T00:00:00+00:00 .. 2026-11-23T00:00:00+00:00" in alert.get_content()
        alerted.add(subject.split(" ")[1].removeprefix("retention_weekly."))
    assert alerted == failed
    assert all(any(f"retention_weekly.{task}" in hook["text"] for hook in hooks) for task in failed)
