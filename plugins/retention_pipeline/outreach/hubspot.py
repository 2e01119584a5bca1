"""HubSpot: contacts upserted by e-mail, one call task per customer on its contact.

Uses the CRM v3 batch endpoints as HubSpot documents them:

* ``POST /crm/v3/objects/contacts/batch/upsert`` with ``idProperty: "email"`` (no
  duplicate contacts however often we run);
* ``POST /crm/v3/objects/tasks/batch/create`` with an association to the contact
  (task -> contact, HubSpot-defined type 204);
* every input carries an ``objectWriteTraceId`` (our idempotency key) so that a ``207
  Multi-Status`` answer's ``results`` and ``errors`` map back to customers; errors are
  recorded as ``rejected`` with HubSpot's category and message.

Tasks have no upsert key. A task is only created again for a row whose earlier attempt
may have reached HubSpot (the answer was lost); for those rows we first search tasks by
their unique subject (``POST /crm/v3/objects/tasks/search``) and reuse what we find.
A whole batch refused with 400 is split in halves until the bad rows are isolated, so
one bad record never blocks the others.
"""

from __future__ import annotations

from typing import Any

from retention_pipeline.outreach.connections import ToolConnection
from retention_pipeline.outreach.http import Response, RetryPolicy, request_json
from retention_pipeline.outreach.rows import CampaignRow, RowResult
from retention_pipeline.outreach.webhook import SinkConfigurationError

DEFAULT_HOST = "api.hubapi.com"
TASK_TO_CONTACT = 204  # HUBSPOT_DEFINED association type "task to contact"
MAX_BATCH = 100  # HubSpot's limit for batch inputs


def _error_reason(err: dict[str, Any]) -> str:
    parts = [str(err.get("category") or ""), str(err.get("message") or "")]
    for sub in err.get("errors") or []:
        if isinstance(sub, dict) and sub.get("message"):
            parts.append(str(sub["message"]))
    return ": ".join(p for p in parts if p) or "rejected by HubSpot"


def _errors_by_trace(body: Any) -> dict[str, str]:
    """Map each error of a (multi-status) batch answer to the trace ids it names."""
    out: dict[str, str] = {}
    if not isinstance(body, dict):
        return out
    for err in body.get("errors") or []:
        if not isinstance(err, dict):
            continue
        context = err.get("context") or {}
        ids: list[str] = []
        if isinstance(context, dict):
            for key in ("objectWriteTraceId", "objectWriteTraceIds", "ids", "id"):
                value = context.get(key)
                if isinstance(value, list):
                    ids.extend(str(v) for v in value)
                elif value:
                    ids.append(str(value))
        if err.get("objectWriteTraceId"):
            ids.append(str(err["objectWriteTraceId"]))
        for trace in ids:
            out[trace] = _error_reason(err)
    return out


class HubSpotSink:
    name = "hubspot"
    is_file = False

    def __init__(self, conn: ToolConnection, policy: RetryPolicy, batch_size: int = MAX_BATCH) -> None:
        self.conn = conn
        self.policy = policy
        self.batch_size = min(batch_size, MAX_BATCH)
        self.headers = {"Authorization": f"Bearer {conn.password}"}

    def _post(self, path: str, payload: dict[str, Any]) -> Response:
        resp = request_json("POST", self.conn.base_url + path, payload, self.policy, self.headers)
        if resp.status in (401, 403):
            raise SinkConfigurationError(f"HubSpot {path}: HTTP {resp.status}: {str(resp.body)[:300]}")
        return resp

    # --- payloads ------------------------------------------------------------------

    @staticmethod
    def contact_input(row: CampaignRow) -> dict[str, Any]:
        first, _, last = row.full_name.partition(" ")
        props = {"email": row.email, "firstname": first, "lastname": last, "phone": row.phone}
        return {
            "id": row.email,
            "idProperty": "email",
            "objectWriteTraceId": row.idempotency_key,
            "properties": {k: v for k, v in props.items() if v},
        }

    @staticmethod
    def task_input(row: CampaignRow, contact_id: str) -> dict[str, Any]:
        return {
            "objectWriteTraceId": row.idempotency_key,
            "properties": {
                "hs_timestamp": row.campaign_start.isoformat().replace("+00:00", "Z"),
                "hs_task_subject": row.task_subject,
                "hs_task_body": row.task_body,
                "hs_task_status": "NOT_STARTED",
                "hs_task_type": "CALL",
                "hs_task_priority": "HIGH" if row.payload.get("intervention_level") == "red" else "MEDIUM",
            },
            "associations": [
                {
                    "to": {"id": contact_id},
                    "types": [
                        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": TASK_TO_CONTACT}
                    ],
                }
            ],
        }

    def describe(self, iso_week: str, rows: list[CampaignRow]) -> list[dict[str, object]]:
        sendable = [r for r in rows if r.email]
        return [
            {
                "POST": self.conn.base_url + "/crm/v3/objects/contacts/batch/upsert",
                "body": {"inputs": [self.contact_input(r) for r in sendable]},
            },
            {
                "POST": self.conn.base_url + "/crm/v3/objects/tasks/batch/create",
                "body": {"inputs": [self.task_input(r, "<contact id from the upsert>") for r in sendable]},
            },
        ]

    # --- the push ------------------------------------------------------------------

    def _batch(
        self, path: str, rows: list[CampaignRow], inputs: list[dict[str, Any]]
    ) -> tuple[dict[str, str], dict[str, str]]:
        """(ids by trace id, rejection reasons by trace id) for one batch call, splitting a
        batch HubSpot refuses as a whole until the offending inputs are alone."""
        resp = self._post(path, {"inputs": inputs})
        if resp.ok:
            ids: dict[str, str] = {}
            body = resp.body if isinstance(resp.body, dict) else {}
            for i, result in enumerate(body.get("results") or []):
                trace = result.get("objectWriteTraceId")
                if not trace and resp.status != 207 and len(body.get("results") or []) == len(rows):
                    trace = rows[i].idempotency_key  # no trace echoed: results keep input order
                if trace:
                    ids[str(trace)] = str(result.get("id"))
            if not ids and path.endswith("upsert"):
                # an upsert answer without trace ids still names each contact's email
                by_email = {r.email.lower(): r.idempotency_key for r in rows}
                for result in body.get("results") or []:
                    email = str((result.get("properties") or {}).get("email") or "").lower()
                    if email in by_email:
                        ids[by_email[email]] = str(result.get("id"))
            return ids, _errors_by_trace(resp.body)
        if len(rows) == 1:
            reason = _error_reason(resp.body) if isinstance(resp.body, dict) else str(resp.body)[:500]
            return {}, {rows[0].idempotency_key: f"HTTP {resp.status}: {reason}"}
        half = len(rows) // 2
        a_ids, a_err = self._batch(path, rows[:half], inputs[:half])
        b_ids, b_err = self._batch(path, rows[half:], inputs[half:])
        return {**a_ids, **b_ids}, {**a_err, **b_err}

    def _existing_task(self, row: CampaignRow) -> str | None:
        resp = self._post(
            "/crm/v3/objects/tasks/search",
            {
                "filterGroups": [
                    {
                        "filters": [
                            {"propertyName": "hs_task_subject", "operator": "EQ", "value": row.task_subject}
                        ]
                    }
                ],
                "properties": ["hs_task_subject"],
                "limit": 1,
            },
        )
        if resp.ok and isinstance(resp.body, dict) and resp.body.get("results"):
            return str(resp.body["results"][0].get("id"))
        return None

    def push(self, iso_week: str, rows: list[CampaignRow]) -> list[RowResult]:
        results: dict[str, RowResult] = {}
        sendable: list[CampaignRow] = []
        for row in rows:
            if row.email:
                sendable.append(row)
            else:
                results[row.customer_id] = RowResult(
                    row.customer_id, "rejected", "no e-mail: HubSpot upserts contacts by e-mail"
                )
        if sendable:
            contact_ids, errors = self._batch(
                "/crm/v3/objects/contacts/batch/upsert", sendable, [self.contact_input(r) for r in sendable]
            )
            with_contact: list[tuple[CampaignRow, str]] = []
            for row in sendable:
                key = row.idempotency_key
                if key in errors:
                    results[row.customer_id] = RowResult(
                        row.customer_id, "rejected", f"contact: {errors[key]}"
                    )
                elif key in contact_ids:
                    with_contact.append((row, contact_ids[key]))
                # neither: HubSpot said nothing about this row; it stays retryable
            to_create: list[tuple[CampaignRow, str]] = []
            for row, contact_id in with_contact:
                found = self._existing_task(row) if row.attempts > 0 else None
                if found:
                    results[row.customer_id] = RowResult(
                        row.customer_id, "pushed", "task existed", f"contact:{contact_id}/task:{found}"
                    )
                else:
                    to_create.append((row, contact_id))
            if to_create:
                task_rows = [r for r, _ in to_create]
                task_ids, task_errors = self._batch(
                    "/crm/v3/objects/tasks/batch/create",
                    task_rows,
                    [self.task_input(r, c) for r, c in to_create],
                )
                for row, contact_id in to_create:
                    key = row.idempotency_key
                    if key in task_errors:
                        results[row.customer_id] = RowResult(
                            row.customer_id, "rejected", f"task: {task_errors[key]}"
                        )
                    elif key in task_ids:
                        results[row.customer_id] = RowResult(
                            row.customer_id, "pushed", "", f"contact:{contact_id}/task:{task_ids[key]}"
                        )
        return list(results.values())
