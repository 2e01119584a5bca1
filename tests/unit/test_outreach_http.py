"""The retrying JSON client against a real local HTTP server: what is retried, how long
it waits (Retry-After first), and where it gives up."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from retention_pipeline.outreach.http import RetriesExhausted, RetryPolicy, request_json, retry_after_seconds


class Script:
    """Answers each request with the next scripted (status, headers, delay)."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict[str, str], float]] = []
        self.hits = 0


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            script.hits += 1
            status, headers, delay = script.answers.pop(0) if script.answers else (200, {}, 0.0)
            time.sleep(delay)
            body = json.dumps({"status": status}).encode()
            try:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/x", script
    httpd.shutdown()
    httpd.server_close()


def _policy(waits: list[float], attempts: int = 4) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=attempts,
        timeout_seconds=0.5,
        base_delay_seconds=0.1,
        max_backoff_seconds=5,
        sleep=waits.append,
    )


def test_429_waits_what_retry_after_says_then_5xx_and_timeout_back_off(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(429, {"Retry-After": "3"}, 0.0), (503, {}, 0.0), (200, {}, 1.0), (200, {}, 0.0)]
    waits: list[float] = []
    resp = request_json("POST", url, {"a": 1}, _policy(waits))
    assert resp.status == 200 and script.hits == 4
    assert waits == [3.0, 0.2, 0.4]  # Retry-After, then exponential backoff per attempt


def test_client_errors_are_returned_not_retried(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(400, {}, 0.0)]
    waits: list[float] = []
    assert request_json("POST", url, {}, _policy(waits)).status == 400
    assert script.hits == 1 and waits == []


def test_gives_up_after_the_bounded_attempts(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(500, {}, 0.0)] * 3
    waits: list[float] = []
    with pytest.raises(RetriesExhausted, match="3 attempts"):
        request_json("POST", url, {}, _policy(waits, attempts=3))
    assert script.hits == 3 and len(waits) == 2


def test_a_retry_after_beyond_the_bound_fails_fast(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(429, {"Retry-After": "3600"}, 0.0)]
    waits: list[float] = []
    with pytest.raises(RetriesExhausted, match="3600"):
        request_json("POST", url, {}, _policy(waits))
    assert script.hits == 1 and waits == []


def test_retry_after_forms() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
