"""JSON over HTTP with bounded retries, shared by the API sinks.

Outreach tools throttle (HubSpot answers 429 with ``Retry-After``, Bitrix24 503
``QUERY_LIMIT_EXCEEDED``) and fail transiently (5xx, timeouts). Those are retried here
with exponential backoff, honouring ``Retry-After``; everything else is the caller's to
interpret, because only the caller knows whether a 4xx is one bad record or a broken
configuration. The bound is in attempts *and* in the longest wait: a tool asking us to
wait longer than ``max_backoff`` gets the push marked failed, and the next task retry
resumes it from the ledger, instead of a worker sleeping for an hour.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

log = logging.getLogger(__name__)


class RetriesExhausted(RuntimeError):
    """A transient failure outlived the retry budget; the rows stay retryable."""


@dataclass(frozen=True)
class Response:
    status: int
    body: Any  # parsed JSON, or the raw text when the body is not JSON
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class RetryPolicy:
    max_attempts: int = 5
    timeout_seconds: float = 10.0
    base_delay_seconds: float = 0.5
    max_backoff_seconds: float = 60.0
    sleep: Callable[[float], None] = time.sleep

    def backoff(self, attempt: int) -> float:
        return float(min(self.base_delay_seconds * 2 ** (attempt - 1), self.max_backoff_seconds))


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _decode(raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        return text


def request_json(
    method: str,
    url: str,
    payload: Any,
    policy: RetryPolicy,
    headers: Mapping[str, str] | None = None,
    *,
    body: bytes | None = None,
) -> Response:
    """Send ``payload`` as JSON (or ``body`` verbatim) and return the first non-transient
    answer. Raises RetriesExhausted when every attempt was throttled, 5xx or timed out."""
    data = body if body is not None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
    all_headers = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
    last_error = ""
    for attempt in range(1, policy.max_attempts + 1):
        req = urllib.request.Request(url, data=data, headers=all_headers, method=method)
        wait: float
        try:
            with urllib.request.urlopen(req, timeout=policy.timeout_seconds) as resp:
                return Response(resp.status, _decode(resp.read()), dict(resp.headers.items()))
        except urllib.error.HTTPError as err:
            answer = Response(err.code, _decode(err.read()), dict(err.headers.items()))
            if err.code != 429 and err.code < 500:
                return answer
            last_error = f"HTTP {err.code}: {str(answer.body)[:300]}"
            asked = retry_after_seconds(err.headers.get("Retry-After"))
            if asked is not None and asked > policy.max_backoff_seconds:
                raise RetriesExhausted(
                    f"{url}: asked to retry after {asked:.0f} s, more than the "
                    f"{policy.max_backoff_seconds:.0f} s bound ({last_error})"
                ) from err
            wait = asked if asked is not None else policy.backoff(attempt)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            last_error = f"{type(err).__name__}: {err}"
            wait = policy.backoff(attempt)
        if attempt < policy.max_attempts:
            log.warning(
                "%s %s: %s; retry %d/%d in %.1f s",
                method,
                url,
                last_error,
                attempt,
                policy.max_attempts - 1,
                wait,
            )
            policy.sleep(wait)
    raise RetriesExhausted(f"{method} {url}: gave up after {policy.max_attempts} attempts ({last_error})")
