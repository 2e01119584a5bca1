"""What a sink receives: one campaign row per called customer, and what it answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

# The call-center file's columns, first those the original call list had (readers rely
# on their order), then what the campaign adds.
FILE_COLUMNS = (
    "call_rank",
    "customer_id",
    "full_name",
    "phone",
    "email",
    "manager_id",
    "intervention_level",
    "churn_stage",
    "value_tier",
    "rfm_segment",
    "recency_days",
    "expected_gap_days",
    "open_complaints",
    "last_survey_score",
    "call_reason",
    "script_variant",
    "offer_code",
    "offer_text",
    "campaign",  # the ISO week: call outcomes come back keyed by it
)


@dataclass(frozen=True)
class CampaignRow:
    iso_week: str
    customer_id: str
    call_rank: int
    variant: str
    offer_code: str | None
    campaign_start: datetime  # the week's end: when the list is handed over
    payload: dict[str, Any] = field(repr=False)  # the mart's columns, contact data included
    attempts: int = 0  # earlier attempts at this (week, sink, customer): a retry may be in doubt

    @property
    def idempotency_key(self) -> str:
        """Stable per (campaign, customer): a receiver that saw it before must ignore it."""
        return f"retention-{self.iso_week}-{self.customer_id}"

    def value(self, column: str) -> Any:
        if column == "campaign":
            return self.iso_week
        if column == "script_variant":
            return self.variant
        if column == "offer_code":
            return self.offer_code or ""
        if column == "call_rank":
            return self.call_rank
        value = self.payload.get(column)
        return "" if value is None else value

    @property
    def phone(self) -> str:
        return str(self.payload.get("phone") or "")

    @property
    def email(self) -> str:
        return str(self.payload.get("email") or "")

    @property
    def full_name(self) -> str:
        return str(self.payload.get("full_name") or self.customer_id)

    @property
    def task_subject(self) -> str:
        """Unique per campaign and customer, so a retry in doubt can look the task up."""
        return f"Retention call {self.iso_week}: {self.full_name} [{self.idempotency_key}]"

    @property
    def task_body(self) -> str:
        parts = [
            f"Why now: {self.payload.get('call_reason') or ''}",
            f"Level: {self.payload.get('intervention_level') or ''}",
            f"Script: {self.variant}",
        ]
        if self.offer_code:
            parts.append(f"Offer: {self.payload.get('offer_text') or self.offer_code}")
        return "\n".join(parts)


Status = Literal["pushed", "rejected"]


@dataclass(frozen=True)
class RowResult:
    customer_id: str
    status: Status
    detail: str = ""
    external_id: str | None = None
