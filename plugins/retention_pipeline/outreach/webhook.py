"""A generic webhook: the call list as signed JSON batches.

Contract for the receiver (documented in the README):

* ``POST`` to the connection's URL, ``Content-Type: application/json``, body
  ``{"campaign": "2026-W47", "rows": [{"idempotency_key": ..., "customer_id": ..., ...}]}``.
* ``X-Retention-Signature: sha256=<hex>``: HMAC-SHA256 of the exact body bytes with the
  connection's password as the key; ``Idempotency-Key``: a hash of the batch's row keys.
  A batch may be delivered more than once (a retry after a lost answer): the receiver
  ignores row keys it has seen.
* Any 2xx accepts the batch; a JSON answer ``{"rejected": [{"idempotency_key": ...,
  "reason": ...}]}`` rejects single rows. 429 and 5xx are retried (``Retry-After`` is
  honoured); 401/403/404 mean a broken configuration (the rows stay retryable); any
  other 4xx rejects the whole batch with the answer as the reason.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

from retention_pipeline.outreach.connections import ToolConnection
from retention_pipeline.outreach.http import RetryPolicy, request_json
from retention_pipeline.outreach.rows import FILE_COLUMNS, CampaignRow, RowResult

SIGNATURE_HEADER = "X-Retention-Signature"


class SinkConfigurationError(RuntimeError):
    """The tool refused us as a whole (credentials, URL): nothing row-specific."""


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _chunks(rows: list[CampaignRow], size: int) -> Iterator[list[CampaignRow]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


class WebhookSink:
    name = "webhook"
    is_file = False

    def __init__(self, conn: ToolConnection, policy: RetryPolicy, batch_size: int = 100) -> None:
        self.conn = conn
        self.policy = policy
        self.batch_size = batch_size

    def _body(self, iso_week: str, rows: list[CampaignRow]) -> bytes:
        items: list[dict[str, Any]] = []
        for row in rows:
            item: dict[str, Any] = {"idempotency_key": row.idempotency_key}
            item.update({c: row.value(c) for c in FILE_COLUMNS})
            items.append(item)
        return json.dumps({"campaign": iso_week, "rows": items}, ensure_ascii=False, sort_keys=True).encode()

    def describe(self, iso_week: str, rows: list[CampaignRow]) -> list[dict[str, object]]:
        return [
            {"POST": self.conn.base_url, "rows": len(batch), "body": json.loads(self._body(iso_week, batch))}
            for batch in _chunks(rows, self.batch_size)
        ]

    def push(self, iso_week: str, rows: list[CampaignRow]) -> list[RowResult]:
        results: list[RowResult] = []
        for batch in _chunks(rows, self.batch_size):
            body = self._body(iso_week, batch)
            batch_key = hashlib.sha256("|".join(r.idempotency_key for r in batch).encode()).hexdigest()
            headers = {
                SIGNATURE_HEADER: sign(self.conn.password, body),
                "Idempotency-Key": batch_key,
            }
            resp = request_json("POST", self.conn.base_url, None, self.policy, headers, body=body)
            if resp.status in (401, 403, 404):
                raise SinkConfigurationError(
                    f"webhook {self.conn.conn_id}: HTTP {resp.status}: {str(resp.body)[:300]}"
                )
            if not resp.ok:
                reason = f"HTTP {resp.status}: {str(resp.body)[:500]}"
                results.extend(RowResult(r.customer_id, "rejected", reason) for r in batch)
                continue
            rejected: dict[str, str] = {}
            if isinstance(resp.body, dict):
                for item in resp.body.get("rejected") or []:
                    if isinstance(item, dict) and item.get("idempotency_key"):
                        rejected[str(item["idempotency_key"])] = str(
                            item.get("reason") or "rejected by the receiver"
                        )
            for row in batch:
                if row.idempotency_key in rejected:
                    results.append(RowResult(row.customer_id, "rejected", rejected[row.idempotency_key]))
                else:
                    results.append(
                        RowResult(row.customer_id, "pushed", f"HTTP {resp.status}", row.idempotency_key)
                    )
        return results
