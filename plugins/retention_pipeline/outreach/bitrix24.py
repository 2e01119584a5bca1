"""Bitrix24: a contact (found by phone or e-mail, else created) and a planned call on it.

Through an inbound webhook, the form Bitrix24 documents:
``https://<portal>/rest/<user id>/<secret>/<method>.json`` with a JSON body. Answers
are ``{"result": ...}`` or ``{"error": CODE, "error_description": text}``;
``QUERY_LIMIT_EXCEEDED`` comes as 503 and is retried like any 5xx.

Bitrix24 has no upsert keys, so deduplication is ours: ``crm.duplicate.findbycomm``
(by phone, then e-mail, entity type CONTACT) before ``crm.contact.add``, and for a row
whose earlier attempt may have reached the portal, ``crm.activity.list`` by owner and
our unique subject before ``crm.activity.add``. The ledger remains the source of truth
of what was pushed. A method answering with an error for a record (HTTP 400) rejects
that customer with Bitrix24's code and description; auth errors stop the sink.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from retention_pipeline.outreach.connections import ToolConnection
from retention_pipeline.outreach.http import RetryPolicy, request_json
from retention_pipeline.outreach.rows import CampaignRow, RowResult
from retention_pipeline.outreach.webhook import SinkConfigurationError

CONTACT_TYPE_ID = 3  # crm.enum.ownertype: contact
ACTIVITY_CALL = 2  # crm.enum.activitytype: call
DIRECTION_OUTGOING = 2  # crm.enum.activitydirection
AUTH_ERRORS = {
    "NO_AUTH_FOUND",
    "INVALID_CREDENTIALS",
    "invalid_token",
    "expired_token",
    "insufficient_scope",
    "ACCESS_DENIED",
}


class RecordRejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Bitrix24Sink:
    name = "bitrix24"
    is_file = False

    # one customer per ledger update: each costs several calls, none of them batched
    batch_size = 1

    def __init__(self, conn: ToolConnection, policy: RetryPolicy) -> None:
        self.conn = conn
        self.policy = policy
        self.responsible_id = conn.extra.get("responsible_id")

    def call(self, method: str, params: dict[str, Any]) -> Any:
        resp = request_json("POST", f"{self.conn.base_url}/{method}.json", params, self.policy)
        body = resp.body if isinstance(resp.body, dict) else {}
        if resp.ok and "error" not in body:
            return body.get("result")
        code = str(body.get("error") or f"HTTP {resp.status}")
        description = str(body.get("error_description") or resp.body or "")[:500]
        if resp.status in (401, 403) or code in AUTH_ERRORS:
            raise SinkConfigurationError(f"Bitrix24 {method}: {code}: {description}")
        raise RecordRejected(f"{method}: {code}: {description}")

    def contact_fields(self, row: CampaignRow) -> dict[str, Any]:
        first, _, last = row.full_name.partition(" ")
        fields: dict[str, Any] = {
            "NAME": first,
            "LAST_NAME": last,
            "OPENED": "Y",
            "TYPE_ID": "CLIENT",
            "SOURCE_ID": "OTHER",
            "ORIGINATOR_ID": "retention_pipeline",
            "ORIGIN_ID": row.customer_id,
        }
        if row.phone:
            fields["PHONE"] = [{"VALUE": row.phone, "VALUE_TYPE": "WORK"}]
        if row.email:
            fields["EMAIL"] = [{"VALUE": row.email, "VALUE_TYPE": "WORK"}]
        if self.responsible_id:
            fields["ASSIGNED_BY_ID"] = self.responsible_id
        return fields

    def activity_fields(self, row: CampaignRow, contact_id: str) -> dict[str, Any]:
        start = row.campaign_start
        fields: dict[str, Any] = {
            "OWNER_TYPE_ID": CONTACT_TYPE_ID,
            "OWNER_ID": contact_id,
            "TYPE_ID": ACTIVITY_CALL,
            "DIRECTION": DIRECTION_OUTGOING,
            "SUBJECT": row.task_subject,
            "DESCRIPTION": row.task_body,
            "DESCRIPTION_TYPE": 1,
            "COMPLETED": "N",
            "PRIORITY": 3 if row.payload.get("intervention_level") == "red" else 2,
            "START_TIME": start.isoformat(),
            "END_TIME": (start + timedelta(days=7)).isoformat(),
            "COMMUNICATIONS": [
                {"VALUE": row.phone or row.email, "ENTITY_ID": contact_id, "ENTITY_TYPE_ID": CONTACT_TYPE_ID}
            ],
        }
        if self.responsible_id:
            fields["RESPONSIBLE_ID"] = self.responsible_id
        return fields

    def describe(self, iso_week: str, rows: list[CampaignRow]) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for row in rows:
            out.append(
                {
                    "POST": f"{self.conn.base_url}/crm.contact.add.json",
                    "body": {"fields": self.contact_fields(row)},
                }
            )
            out.append(
                {
                    "POST": f"{self.conn.base_url}/crm.activity.add.json",
                    "body": {"fields": self.activity_fields(row, "<contact id>")},
                }
            )
        return out

    def _find_contact(self, row: CampaignRow) -> str | None:
        for comm_type, value in (("PHONE", row.phone), ("EMAIL", row.email)):
            if not value:
                continue
            found = self.call(
                "crm.duplicate.findbycomm", {"entity_type": "CONTACT", "type": comm_type, "values": [value]}
            )
            ids = found.get("CONTACT") if isinstance(found, dict) else None
            if ids:
                return str(min(int(i) for i in ids))
        return None

    def _existing_activity(self, row: CampaignRow, contact_id: str) -> str | None:
        found = self.call(
            "crm.activity.list",
            {
                "filter": {
                    "OWNER_TYPE_ID": CONTACT_TYPE_ID,
                    "OWNER_ID": contact_id,
                    "SUBJECT": row.task_subject,
                },
                "select": ["ID"],
            },
        )
        if isinstance(found, list) and found:
            return str(found[0].get("ID"))
        return None

    def push_one(self, row: CampaignRow) -> RowResult:
        if not row.phone and not row.email:
            return RowResult(
                row.customer_id, "rejected", "no phone and no e-mail to call or find the contact by"
            )
        try:
            contact_id = self._find_contact(row)
            if contact_id is None:
                contact_id = str(self.call("crm.contact.add", {"fields": self.contact_fields(row)}))
            activity_id = self._existing_activity(row, contact_id) if row.attempts > 0 else None
            if activity_id is None:
                activity_id = str(
                    self.call("crm.activity.add", {"fields": self.activity_fields(row, contact_id)})
                )
        except RecordRejected as rejected:
            return RowResult(row.customer_id, "rejected", rejected.reason)
        return RowResult(row.customer_id, "pushed", "", f"contact:{contact_id}/activity:{activity_id}")

    def push(self, iso_week: str, rows: list[CampaignRow]) -> list[RowResult]:
        return [self.push_one(row) for row in rows]
