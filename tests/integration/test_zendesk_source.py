"""Tickets from a local HTTP server that answers like Zendesk's incremental export.

The server speaks the documented shapes (``tickets``, ``metric_sets``, ``after_cursor``,
``after_url``, ``end_of_stream``), checks token authentication, and misbehaves on
purpose: a 429 with ``Retry-After``, a 500, and a response slower than the client's
timeout.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from retention_pipeline import ingest_tasks, warehouse
from retention_pipeline.sources.zendesk import (
    EXPORT_LAG,
    RetryPolicy,
    ZendeskClient,
    ZendeskError,
    end_time_for,
)

pytestmark = pytest.mark.integration

D1 = datetime(2026, 11, 16, tzinfo=UTC)
D2 = D1 + timedelta(days=1)
D3 = D2 + timedelta(days=1)
EMAIL, TOKEN = "agent@example.com", "s3cr3t-token"


def _z(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeZendesk:
    """State of the test server: tickets by id, scripted faults, the requests seen."""

    def __init__(self) -> None:
        self.tickets: dict[int, dict[str, Any]] = {}
        self.metrics: dict[int, dict[str, Any]] = {}
        self.faults: list[str] = []  # consumed one per request: "429", "500", "slow"
        self.requests: list[dict[str, list[str]]] = []
        self.page_size = 2

    def put(self, ticket_id: int, updated: datetime, **fields: Any) -> None:
        ticket = {
            "id": ticket_id,
            "url": f"https://example.zendesk.com/api/v2/tickets/{ticket_id}.json",
            "requester_id": 9000 + ticket_id,
            "assignee_id": 77,
            "created_at": _z(D1),
            "updated_at": _z(updated),
            "status": "open",
            "priority": "normal",
            "type": "question",
            "subject": f"ticket {ticket_id}",
            "tags": [],
        }
        ticket.update(fields)
        self.tickets[ticket_id] = ticket

    def page(self, query: dict[str, list[str]], base: str) -> dict[str, Any]:
        ordered = sorted(self.tickets.values(), key=lambda t: (t["updated_at"], t["id"]))
        if "cursor" in query:
            # the cursor encodes (updated_at, id) of the last ticket handed out
            last = json.loads(base64.urlsafe_b64decode(query["cursor"][0]))
            rest = [t for t in ordered if (t["updated_at"], t["id"]) > tuple(last)]
        else:
            start = datetime.fromtimestamp(int(query["start_time"][0]), UTC)
            rest = [t for t in ordered if t["updated_at"] >= _z(start)]
        page = rest[: self.page_size]
        end = len(rest) <= self.page_size
        anchor = (page[-1]["updated_at"], page[-1]["id"]) if page else (_z(datetime.now(UTC)), 0)
        cursor = base64.urlsafe_b64encode(json.dumps(list(anchor)).encode()).decode()
        body: dict[str, Any] = {
            "tickets": page,
            "after_cursor": cursor,
            "after_url": f"{base}/api/v2/incremental/tickets/cursor.json?cursor={cursor}",
            "before_cursor": None,
            "before_url": None,
            "end_of_stream": end,
        }
        if "metric_sets" in query.get("include", [""])[0]:
            body["metric_sets"] = [self.metrics[t["id"]] for t in page if t["id"] in self.metrics]
        return body


@pytest.fixture
def zendesk() -> Iterator[tuple[FakeZendesk, str]]:
    state = FakeZendesk()
    expected = "Basic " + base64.b64encode(f"{EMAIL}/token:{TOKEN}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = parse_qs(url.query)
            state.requests.append(query)
            if self.headers.get("Authorization") != expected:
                self._send(401, {"error": "Couldn't authenticate you"})
                return
            if url.path != "/api/v2/incremental/tickets/cursor.json":
                self._send(404, {"error": "InvalidEndpoint"})
                return
            fault = state.faults.pop(0) if state.faults else None
            if fault == "429":
                self._send(429, {"error": "APIRateLimitExceeded"}, {"Retry-After": "1"})
                return
            if fault == "500":
                self._send(500, {"error": "InternalError"})
                return
            if fault == "slow":
                time.sleep(1.5)
            host, port = self.server.server_address[:2]
            self._send(200, state.page(query, f"http://{host}:{port}"))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _rows(query: str) -> list[tuple]:
    with warehouse.connect() as conn:
        return conn.execute(query).fetchall()  # type: ignore[arg-type]


def _configure(tmp_path, monkeypatch, base: str) -> None:
    port = base.rsplit(":", 1)[1]
    monkeypatch.setenv("AIRFLOW_CONN_ZENDESK", f"http://agent%40example.com:{TOKEN}@127.0.0.1:{port}")
    path = tmp_path / "sources.yml"
    path.write_text(
        "tickets:\n  kind: zendesk\n  conn_id: zendesk\n  overlap_minutes: 5\n"
        "  timeout_seconds: 0.5\n  backoff_seconds: 0.05\n  max_retries: 3\n"
    )
    monkeypatch.setenv("RETENTION_SOURCES_FILE", str(path))


def test_tickets_page_through_faults_map_to_the_contract_and_save_the_cursor_on_publish(
    warehouse_db, zendesk, tmp_path, monkeypatch
):
    state, base = zendesk
    _configure(tmp_path, monkeypatch, base)
    state.put(1, D1 + timedelta(hours=1), type="problem", priority="high", status="hold")
    state.put(2, D1 + timedelta(hours=2), type="incident", tags=["vip", "Complaint"], status="solved")
    state.put(3, D1 + timedelta(hours=3), type=None, priority=None, status="new")
    state.put(4, D1 + timedelta(hours=4), type="task", status="closed", assignee_id=None)
    state.put(5, D2 + timedelta(hours=1), status="pending")  # after this interval: later
    state.metrics[2] = {
        "id": 502,
        "ticket_id": 2,
        "reply_time_in_minutes": {"calendar": 90, "business": 30},
        "solved_at": _z(D1 + timedelta(hours=2)),
    }
    state.faults = ["429", "500", "slow"]

    started = time.monotonic()
    batch_id = ingest_tasks.land_entity("tickets", D1, D2)
    assert time.monotonic() - started >= 1.0  # Retry-After was honoured
    assert batch_id is not None
    # 429, 500 and the timed-out request were retried: 3 failed + 3 pages of 2
    assert len(state.requests) == 6
    assert state.requests[0]["start_time"] == ["0"]  # first run: the whole history
    assert state.requests[0]["include"] == ["metric_sets"]
    assert "cursor" in state.requests[-1]
    assert _rows("select count(*) from ops.source_watermarks") == [(0,)]
    ingest_tasks.publish(batch_id)

    assert _rows(
        "select ticket_id, customer_id, status, priority, type, assignee_id, first_reply_at, solved_at from raw.tickets order by 1"
    ) == [
        ("1", "9001", "pending", "high", "incident", "77", None, None),
        (
            "2",
            "9002",
            "solved",
            "normal",
            "complaint",
            "77",
            D1 + timedelta(minutes=90),
            D1 + timedelta(hours=2),
        ),
        ("3", "9003", "new", "normal", "question", "77", None, None),
        ("4", "9004", "closed", "normal", "question", None, None, None),
    ]
    # ticket 5 was left for later, so the cursor (past it) is not kept
    assert _rows("select watermark, cursor from ops.source_watermarks") == [(D2, None)]

    # the next day starts from the watermark minus the overlap and picks up ticket 5
    state.requests.clear()
    batch_id = ingest_tasks.land_entity("tickets", D2, D3)
    ingest_tasks.publish(batch_id)
    assert state.requests[0]["start_time"] == [str(int((D2 - timedelta(minutes=5)).timestamp()))]
    assert _rows("select ticket_id, status from raw.tickets where ticket_id = '5'") == [("5", "pending")]
    ((watermark, cursor),) = _rows("select watermark, cursor from ops.source_watermarks")
    assert watermark == D3 and cursor

    # the day after resumes from the saved cursor
    state.requests.clear()
    state.put(1, D3 + timedelta(hours=5), type="problem", priority="urgent", status="solved")
    batch_id = ingest_tasks.land_entity("tickets", D3, D3 + timedelta(days=1))
    ingest_tasks.publish(batch_id)
    assert state.requests[0]["cursor"] == [cursor]
    assert _rows("select priority, status from raw.tickets where ticket_id = '1'") == [("urgent", "solved")]
    for read, loaded, quarantined in _rows(
        "select rows_read, rows_loaded, rows_quarantined from ops.load_batches"
    ):
        assert read == loaded + quarantined


def test_retries_are_bounded_and_auth_errors_fail_at_once(zendesk):
    state, base = zendesk
    client = ZendeskClient(
        base, EMAIL, TOKEN, RetryPolicy(timeout_seconds=0.5, backoff_seconds=0.01, max_retries=2)
    )
    state.faults = ["500", "500", "500"]
    with pytest.raises(ZendeskError, match="HTTP 500 after 3 attempts"):
        client.get("/api/v2/incremental/tickets/cursor.json", {"start_time": 0})
    assert len(state.requests) == 3
    bad = ZendeskClient(base, EMAIL, "wrong", RetryPolicy(backoff_seconds=0.01))
    with pytest.raises(ZendeskError, match="HTTP 401"):
        bad.get("/api/v2/incremental/tickets/cursor.json", {"start_time": 0})
    client.close()
    bad.close()


def test_the_last_minute_is_left_out_only_when_the_interval_reaches_now():
    now = datetime(2026, 11, 23, 12, 0, 30, tzinfo=UTC)
    assert end_time_for(now + timedelta(hours=1), now) == now - EXPORT_LAG
    assert end_time_for(now - timedelta(days=1), now) == now - timedelta(days=1)
