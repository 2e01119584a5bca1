"""The digest watch: a week whose digest is not in the ledger as sent alerts the data team."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from retention_pipeline import warehouse
from retention_pipeline.alerts import DigestLate, check_digest_delivered

pytestmark = pytest.mark.integration


@pytest.fixture
def webhook(monkeypatch):
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("RETENTION_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/hook")
    monkeypatch.delenv("RETENTION_ALERT_RECIPIENTS", raising=False)
    monkeypatch.setenv("RETENTION_DIGEST_RECIPIENTS", "all@company.test,managers@company.test")
    yield received
    server.shutdown()


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
