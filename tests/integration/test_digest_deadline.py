"""The digest watch: a week whose digest is not in the ledger as sent alerts the data team."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from retention_pipeline import warehouse
from retention_pipeline.alerts import DigestLate, check_digest_delivered

pytestmark = pytest.mark.integration


@pytest.fixture
def webhook(monkeypatch, json_receiver):
    monkeypatch.setenv("RETENTION_ALERT_WEBHOOK_URL", json_receiver.url)
    monkeypatch.delenv("RETENTION_ALERT_RECIPIENTS", raising=False)
    monkeypatch.setenv("RETENTION_DIGEST_RECIPIENTS", "all@company.test,managers@company.test")
    return json_receiver.received


def _ledger(recipient: str, status: str) -> None:
    with warehouse.connect() as conn:
        conn.execute(
            """insert into ops.digest_sends (iso_week, recipient, status, message_id, subject, started_at)
               values ('2026-W47', %s, %s, '<m@x>', 's', now())""",
            (recipient, status),
        )
        conn.commit()


def test_a_digest_not_sent_to_every_list_by_the_deadline_alerts(warehouse_db, webhook):
    _ledger("all@company.test", "sent")
    _ledger("managers@company.test", "failed")
    monday_9 = datetime(2026, 11, 23, 9, tzinfo=UTC)
    with pytest.raises(DigestLate, match=r"managers@company\.test"):
        check_digest_delivered("2026-W47", monday_9)
    assert len(webhook) == 1
    text = webhook[0]["text"]
    assert (
        "2026-W47" in text
        and "managers@company.test" in text
        and "all@company.test" not in text.split("sent to")[1]
    )


def test_a_delivered_digest_raises_nothing(warehouse_db, webhook):
    _ledger("all@company.test", "sent")
    _ledger("managers@company.test", "sent")
    assert check_digest_delivered("2026-W47")["sent_to"] == "all@company.test,managers@company.test"
    assert webhook == []


def test_the_watch_runs_monday_at_the_deadline_hour_for_the_week_just_ended():
    from airflow.dag_processing.dagbag import DagBag

    from retention_pipeline.config import PROJECT_ROOT

    dag = DagBag(str(PROJECT_ROOT / "dags" / "retention_digest_watch.py")).dags["retention_digest_watch"]
    interval = dag.timetable.infer_manual_data_interval(run_after=datetime(2026, 11, 23, 10, tzinfo=UTC))
    assert interval.end == datetime(2026, 11, 23, 9, tzinfo=UTC)
