"""A weekly run that has not finished by the digest deadline alerts the data team."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from retention_pipeline.alerts import digest_deadline_missed


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
    yield received
    server.shutdown()


def test_deadline_callback_names_the_week_and_the_late_run(webhook):
    # the context Airflow's scheduler hands a triggerer callback when a deadline is missed
    context = {
        "dag_run": {
            "dag_id": "retention_weekly",
            "dag_run_id": "scheduled__2026-11-16T00:00:00+00:00",
            "state": "running",
            "data_interval_start": "2026-11-16T00:00:00+00:00",
            "data_interval_end": "2026-11-23T00:00:00+00:00",
        },
        "deadline": {"id": "x", "deadline_time": "2026-11-23T09:00:00+00:00"},
    }
    asyncio.run(digest_deadline_missed(context=context))
    assert len(webhook) == 1
    text = webhook[0]["text"]
    assert "retention_weekly" in text and "2026-W47" in text
    assert "deadline 2026-11-23T09:00:00+00:00" in text and "late" in text


def test_the_weekly_dag_carries_the_deadline():
    from airflow.dag_processing.dagbag import DagBag

    from retention_pipeline.config import PROJECT_ROOT

    dag = DagBag(str(PROJECT_ROOT / "dags" / "retention_weekly.py")).dags["retention_weekly"]
    (alert,) = dag.deadline
    assert alert.interval.total_seconds() == 9 * 3600
    assert "digest_deadline_missed" in str(
        alert.callback.path if hasattr(alert.callback, "path") else alert.callback.__dict__
    )
