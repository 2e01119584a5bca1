"""Support tickets from Zendesk's cursor-based incremental ticket export.

``GET /api/v2/incremental/tickets/cursor.json?start_time=<epoch>`` (or ``?cursor=``)
answers ``{tickets, after_cursor, after_url, end_of_stream}``; we page with
``after_cursor`` until ``end_of_stream``. ``include=metric_sets`` side-loads each
ticket's metrics (first reply and solve times), ``exclude_deleted=true`` drops deleted
tickets. Authentication is an API token: user ``<agent email>/token``, password the
token, both from the Airflow connection.

Where a run starts: from the saved cursor when the previous published run ended exactly
where this interval starts (the daily case), else from ``start_time`` =
``min(watermark, interval_start) - overlap`` (a backfill, a gap, or the first run).

Where it ends: at ``end_time = min(interval_end, now - 60 s)``. This is the only use of
the wall clock in the pipeline: Zendesk itself leaves out items changed in the minute
before a request, because they may still be in flight, so a ticket updated in that last
minute is not reliably in the export yet. Tickets at or after ``end_time`` are left for
the next run; if any was left out, the cursor (which points past them) is not saved, and
the next run restarts from ``start_time`` instead, so nothing is skipped.

Rate limits and failures: a 429 waits for its ``Retry-After``; a 5xx, a timeout or a
dropped connection is retried with bounded exponential backoff; anything else fails the
task (and Airflow's task retries take over).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from retention_pipeline.entities import TICKETS
from retention_pipeline.loading import StreamedFile
from retention_pipeline.sources.config import SourceSpec
from retention_pipeline.sources.csv_blocks import encode_rows, peek

log = logging.getLogger(__name__)

EXPORT_PATH = "/api/v2/incremental/tickets/cursor.json"
# Zendesk's own "freshness" lag of the incremental export
EXPORT_LAG = timedelta(seconds=60)
_TYPES = {"problem": "incident", "incident": "incident", "question": "question", "task": "question"}
_STATUSES = {
    "new": "new",
    "open": "open",
    "pending": "pending",
    "hold": "pending",
    "solved": "solved",
    "closed": "closed",
}


class ZendeskError(RuntimeError):
    pass


@dataclass
class RetryPolicy:
    timeout_seconds: float = 30.0
    max_retries: int = 5  # for 5xx and timeouts
    backoff_seconds: float = 2.0  # first wait; doubles each time
    max_backoff_seconds: float = 60.0
    max_rate_limit_waits: int = 10
    max_retry_after_seconds: float = 600.0

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> RetryPolicy:
        names = cls.__dataclass_fields__
        return cls(**{k: type(getattr(cls(), k))(v) for k, v in options.items() if k in names})


class ZendeskClient:
    def __init__(
        self,
        base_url: str,
        email: str,
        token: str,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import httpx

        self.policy = policy or RetryPolicy()
        user = email if email.endswith("/token") else f"{email}/token"
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            auth=(user, token),
            timeout=self.policy.timeout_seconds,
            headers={"Accept": "application/json"},
        )
        self._sleep = sleep
        self.requests = 0

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        import httpx

        failures = rate_limited = 0
        while True:
            self.requests += 1
            try:
                response = self._http.get(path, params=params)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                failures += 1
                if failures > self.policy.max_retries:
                    raise ZendeskError(f"{path}: giving up after {failures} failures: {exc!r}") from exc
                self._backoff(failures, repr(exc))
                continue
            if response.status_code == 429:
                rate_limited += 1
                wait = _retry_after(response.headers.get("Retry-After"))
                if (
                    rate_limited > self.policy.max_rate_limit_waits
                    or wait > self.policy.max_retry_after_seconds
                ):
                    raise ZendeskError(f"{path}: rate limited {rate_limited} times (Retry-After {wait} s)")
                log.warning("zendesk: 429 rate limited, waiting %.1f s (Retry-After)", wait)
                self._sleep(wait)
                continue
            if response.status_code >= 500:
                failures += 1
                if failures > self.policy.max_retries:
                    raise ZendeskError(f"{path}: HTTP {response.status_code} after {failures} attempts")
                self._backoff(failures, f"HTTP {response.status_code}")
                continue
            if response.status_code != 200:
                raise ZendeskError(f"{path}: HTTP {response.status_code}: {response.text[:300]}")
            body: dict[str, Any] = response.json()
            return body

    def _backoff(self, failures: int, why: str) -> None:
        wait = min(self.policy.backoff_seconds * 2 ** (failures - 1), self.policy.max_backoff_seconds)
        log.warning("zendesk: %s, retry %d in %.2f s", why, failures, wait)
        self._sleep(wait)


def _retry_after(value: str | None) -> float:
    try:
        return max(float(value), 0.0) if value else 60.0
    except ValueError:
        return 60.0  # an HTTP date; Zendesk sends seconds, be conservative otherwise


def _ts(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def map_ticket(ticket: dict[str, Any], metrics: dict[str, Any] | None, spec: SourceSpec) -> dict[str, Any]:
    """One Zendesk ticket in the tickets contract.

    Zendesk has no "complaint" type: a complaint is a ticket tagged so (the tag is an
    option, ``complaint_tag``). ``problem`` is an incident many customers share; ``task``
    is follow-up work and counts as a question. A ticket without priority is ``normal``
    (Zendesk's own default in its UI), without a type a ``question``.
    """
    tags = {str(t).lower() for t in ticket.get("tags") or ()}
    complaint_tag = str(spec.options.get("complaint_tag", "complaint")).lower()
    if complaint_tag in tags:
        kind = "complaint"
    else:
        kind = _TYPES.get(str(ticket.get("type") or "question"), str(ticket.get("type")))
    created = _ts(ticket.get("created_at"))
    first_reply = solved = None
    if metrics:
        minutes = (metrics.get("reply_time_in_minutes") or {}).get("calendar")
        if minutes is not None and created is not None:
            first_reply = created + timedelta(minutes=float(minutes))
        solved = _ts(metrics.get("solved_at"))
    status = str(ticket.get("status") or "")
    row: dict[str, Any] = {
        "ticket_id": ticket.get("id"),
        "customer_id": ticket.get("requester_id"),
        "created_at": created,
        "first_reply_at": first_reply,
        "solved_at": solved,
        "status": _STATUSES.get(status, status),
        "priority": ticket.get("priority") or spec.options.get("default_priority", "normal"),
        "type": kind,
        "assignee_id": ticket.get("assignee_id"),
        "subject": ticket.get("subject"),
        "updated_at": _ts(ticket.get("updated_at")),
    }
    for source_field, column in spec.mapping.items():
        row[column] = ticket.get(source_field)
    return row


@dataclass
class TicketExport:
    """What one run read; ``cursor`` is filled in once the stream has been consumed."""

    start: str  # "cursor" or the start_time used, for the ledger name and the log
    end_time: datetime
    cursor: str | None = None
    pages: int = 0
    tickets: int = 0
    left_for_later: int = 0
    finished: bool = False
    notes: list[str] = field(default_factory=list)


def end_time_for(interval_end: datetime, now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return min(interval_end, now - EXPORT_LAG)


def extract(
    spec: SourceSpec,
    client: ZendeskClient,
    watermark: datetime | None,
    saved_cursor: str | None,
    interval_start: datetime,
    interval_end: datetime,
    now: datetime | None = None,
) -> tuple[StreamedFile | None, TicketExport]:
    end_time = end_time_for(interval_end, now)
    base: dict[str, Any] = {"include": "metric_sets", "exclude_deleted": "true"}
    params: dict[str, Any]
    if saved_cursor and watermark is not None and watermark == interval_start:
        params = {**base, "cursor": saved_cursor}
        start = f"cursor@{watermark.isoformat()}"
    else:
        if watermark is not None:
            since = min(watermark, interval_start)
        elif "start_time" in spec.options:
            since = datetime.fromisoformat(str(spec.options["start_time"]))
        else:
            since = datetime(1970, 1, 1, tzinfo=UTC)
        since -= timedelta(minutes=spec.overlap_minutes)
        params = {**base, "start_time": max(int(since.timestamp()), 0)}
        start = since.isoformat()
    export = TicketExport(start=start, end_time=end_time)
    columns = TICKETS.column_names
    max_pages = int(spec.options.get("max_pages", 100_000))

    def blocks() -> Iterator[bytes]:
        page_params = params
        cursor: str | None = None
        while True:
            if export.pages >= max_pages:
                raise ZendeskError(f"more than {max_pages} pages without end_of_stream")
            body = client.get(EXPORT_PATH, page_params)
            export.pages += 1
            metrics = {str(m.get("ticket_id")): m for m in body.get("metric_sets") or ()}
            rows = []
            for ticket in body.get("tickets") or ():
                updated = _ts(ticket.get("updated_at"))
                if updated is not None and updated >= end_time:
                    export.left_for_later += 1
                    continue
                row = map_ticket(ticket, metrics.get(str(ticket.get("id"))), spec)
                rows.append([row.get(c) for c in columns])
            export.tickets += len(rows)
            yield encode_rows(rows)
            cursor = body.get("after_cursor") or cursor
            if body.get("end_of_stream") or not body.get("after_cursor"):
                break
            page_params = {**base, "cursor": body["after_cursor"]}
        export.finished = True
        # the cursor points past every ticket returned, including those left for later
        export.cursor = cursor if export.left_for_later == 0 else None
        log.info(
            "zendesk tickets: %d pages, %d tickets up to %s, %d left for a later run, %d requests",
            export.pages,
            export.tickets,
            end_time.isoformat(),
            export.left_for_later,
            client.requests,
        )

    stream = peek(blocks())
    if stream is None:
        return None, export
    name = f"zendesk:tickets:[{start}, {end_time.isoformat()})"
    return StreamedFile(name=name, columns=list(columns), chunks=stream), export
