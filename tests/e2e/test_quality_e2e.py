"""The real DAGs, a week that passes and a week a gate stops: BI keeps the good marts.

Airflow runs in a subprocess (``retention run``) against a fresh database on the real
warehouse; the digest and the alert go through a real SMTP server on loopback, the
alert also to a real HTTP server standing in for the team's Slack-compatible webhook.
The second week breaks the configured week-over-week bound on the churn-stage shares:
the audit fails on ``marts_build``, ``publish_marts`` never runs, nothing is sent or
pushed, ``marts`` still holds the first week, and Airflow's failure callback tells the
data team which check failed, with its numbers.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest
from e2e_support import query, run_retention, smtp_conn_uri

from retention_pipeline.sample_data import generate

pytestmark = pytest.mark.e2e


@pytest.fixture
def channels(smtp_server, json_receiver):
    inbox, port = smtp_server
    return inbox, port, json_receiver.received, json_receiver.url


def test_a_week_stopped_by_a_gate_sends_nothing_keeps_bi_on_last_week_and_alerts(
    warehouse_db, channels, tmp_path
):
    inbox, port, hooks, webhook = channels
    generate(
        Path(os.environ["RETENTION_LANDING_DIR"]),
        end=date(2026, 11, 23),
        seed=7,
        customers=500,
        daily_from=date(2026, 11, 16),
    )
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW_CONN_SMTP_DEFAULT": smtp_conn_uri(port),
        "RETENTION_DIGEST_RECIPIENTS": "all@company.test",
        "RETENTION_ALERT_RECIPIENTS": "data-team@company.test",
        "RETENTION_ALERT_WEBHOOK_URL": webhook,
        "RETENTION_CALL_LIST_CAPACITY": "50",
    }
    done = run_retention(env, "run", "--week", "2026-W46")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert len(inbox.to("all@company.test")) == 1 and not inbox.to("data-team@company.test") and not hooks
    assert query(warehouse_db, "select max(iso_week) from marts.rpt_weekly_kpis") == [("2026-W46",)]
    kpis = query(warehouse_db, "select * from marts.rpt_weekly_kpis order by iso_week")
    assert query(warehouse_db, "select count(*) > 5 from ops.mart_run_stats where iso_week = '2026-W46'") == [
        (True,)
    ]

    # next week, the team's bound on a churn-stage shift is tighter than any real week moves
    done = run_retention({**env, "RETENTION_MAX_STAGE_SHARE_SHIFT_PP": "0.0001"}, "run", "--week", "2026-W47")
    assert done.returncode != 0
    assert "failed tasks: ['gate_marts']" in done.stdout + done.stderr

    # nothing sent, nothing pushed, BI still reads W46, whole; the failed build is kept for inspection
    assert len(inbox.to("all@company.test")) == 1
    assert query(warehouse_db, "select count(*) from ops.digest_sends where iso_week = '2026-W47'") == [(0,)]
    assert query(warehouse_db, "select count(*) from ops.outreach_pushes where iso_week = '2026-W47'") == [
        (0,)
    ]
    assert not (Path(env["RETENTION_OUTBOX_DIR"]) / "call_lists" / "call_list_2026-W47.csv").exists()
    assert query(warehouse_db, "select * from marts.rpt_weekly_kpis order by iso_week") == kpis
    assert query(warehouse_db, "select max(iso_week) from marts_build.rpt_weekly_kpis") == [("2026-W47",)]

    # the data team was told, by Airflow's failure callback: DAG, task, interval, the checks
    [alert] = inbox.to("data-team@company.test")
    subject = alert["Subject"].strip()
    assert subject.startswith("[retention] retention_weekly.gate_marts failed for 2026-W47: ")
    assert subject.endswith("failed checks")
    body = alert.get_content()
    assert "Interval: 2026-11-16T00:00:00+00:00 .. 2026-11-23T00:00:00+00:00" in body
    assert "expect_week_over_week_change_within" in body and "stage_share:" in body
    assert "in 2026-W46 ->" in body and "in 2026-W47 (change" in body
    assert (
        len(hooks) == 1
        and "retention_weekly.gate_marts" in hooks[0]["text"]
        and "stage_share:" in hooks[0]["text"]
    )
