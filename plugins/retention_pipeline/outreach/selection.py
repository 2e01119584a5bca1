"""Who a campaign calls, who it deliberately does not (the holdout), and who it must not.

A campaign is one ISO week's call list. It walks ``marts.rpt_call_list`` in call-rank
order (yellow..red, most urgent first) and puts each customer in one arm:

* ``excluded``, with the reason: ``do_not_call`` (the mart filters it; consent is law,
  so it is checked again against the mart and the raw customer row), ``open_campaign``
  (an earlier campaign's push to them is still pending or failed), ``recent_holdout``
  (held out by a campaign within the suppression window: calling them would spoil that
  campaign's measurement), ``suppressed`` (pushed by an earlier campaign, or called per
  ``raw.call_outcomes``, within ``RETENTION_SUPPRESSION_DAYS`` before this campaign);
* ``holdout``: a deterministic share (``RETENTION_HOLDOUT_SHARE``) of the eligible,
  by a hash of customer and campaign week, recorded and never pushed;
* ``treatment``: everyone else, until ``RETENTION_CALL_LIST_CAPACITY`` customers.

Each treated customer gets a script variant (a second hash, uniform over
``RETENTION_SCRIPT_VARIANTS``) and the offer of the ``offers`` seed for their segment
and tier. Hashes, not random numbers: a re-run, a backfill or an auditor gets the same
arms. The plan is written once to ``ops.outreach_assignments`` (with the mart row as
it was, so a re-run rebuilds the same list even if the marts moved) and reused after.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retention_pipeline.config import Settings
from retention_pipeline.outreach.rows import CampaignRow
from retention_pipeline.weeks import week_interval

if TYPE_CHECKING:
    import psycopg

HOLDOUT_SALT = "holdout"
VARIANT_SALT = "variant"


def unit_hash(customer_id: str, iso_week: str, salt: str) -> float:
    """A uniform number in [0, 1) from the customer and the campaign, stable forever."""
    digest = hashlib.sha256(f"{salt}|{iso_week}|{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_holdout(customer_id: str, iso_week: str, share: float) -> bool:
    return unit_hash(customer_id, iso_week, HOLDOUT_SALT) < share


def script_variant(customer_id: str, iso_week: str, variants: Sequence[str]) -> str:
    if not variants:
        return ""
    return variants[int(unit_hash(customer_id, iso_week, VARIANT_SALT) * len(variants))]


@dataclass(frozen=True)
class Offer:
    code: str
    text: str


class OfferBook:
    """The ``offers`` seed: the most specific (segment, tier) row wins, '*' matches all."""

    def __init__(self, rows: list[dict[str, str]]) -> None:
        self.by_key = {
            (r["rfm_segment"].strip(), r["value_tier"].strip()): Offer(r["offer_code"], r["offer_text"])
            for r in rows
        }

    @classmethod
    def from_seed(cls, dbt_project_dir: Path) -> OfferBook:
        path = dbt_project_dir / "seeds" / "offers.csv"
        if not path.exists():
            return cls([])
        with path.open(encoding="utf-8") as fh:
            return cls(list(csv.DictReader(fh)))

    def suggest(self, segment: str | None, tier: str | None) -> Offer | None:
        seg, tr = segment or "*", tier or "*"
        for key in ((seg, tr), (seg, "*"), ("*", tr), ("*", "*")):
            if key in self.by_key:
                return self.by_key[key]
        return None


@dataclass(frozen=True)
class Assignment:
    iso_week: str
    customer_id: str
    call_rank: int
    arm: str
    exclusion_reason: str | None
    variant: str | None
    offer_code: str | None
    intervention_level: str | None
    campaign_start: datetime
    payload: dict[str, Any]

    def as_row(self, attempts: int = 0) -> CampaignRow:
        return CampaignRow(
            iso_week=self.iso_week,
            customer_id=self.customer_id,
            call_rank=self.call_rank,
            variant=self.variant or "",
            offer_code=self.offer_code,
            campaign_start=self.campaign_start,
            payload=self.payload,
            attempts=attempts,
        )


def _table_exists(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("select to_regclass(%s) is not null", (name,)).fetchone() == (True,)


def exclusion_reasons(
    conn: psycopg.Connection,
    iso_week: str,
    campaign_start: datetime,
    settings: Settings,
    customer_ids: Sequence[str],
) -> dict[str, str]:
    """customer_id -> why this campaign must not call them (the first reason that holds),
    for the given candidates only: asked of every customer, the do-not-call lists alone
    are ~90k ids out of 1.8M at 10M orders, read into Python each week to judge a few
    hundred candidates."""
    window_start = campaign_start - timedelta(days=settings.suppression_days)
    reasons: dict[str, str] = {}
    ids = list(customer_ids)

    def add(reason: str, query: str, params: tuple[object, ...]) -> None:
        for (customer_id,) in conn.execute(query, (*params, ids)).fetchall():
            reasons.setdefault(str(customer_id), reason)

    add(
        "do_not_call",
        "select customer_id from marts.dim_customers where do_not_call and customer_id = any(%s)",
        (),
    )
    if _table_exists(conn, "raw.customers"):
        add(
            "do_not_call",
            "select customer_id from raw.customers where do_not_call and customer_id = any(%s)",
            (),
        )
    add(
        "open_campaign",
        """select distinct customer_id from ops.outreach_pushes
           where iso_week < %s and status in ('pending', 'failed') and customer_id = any(%s)""",
        (iso_week,),
    )
    add(
        "recent_holdout",
        """select customer_id from ops.outreach_assignments
           where iso_week < %s and arm = 'holdout' and campaign_start > %s and customer_id = any(%s)""",
        (iso_week, window_start),
    )
    # a campaign's push happens at its week's end: earlier pushes count from there
    add(
        "suppressed",
        """select distinct p.customer_id from ops.outreach_pushes p
           left join ops.outreach_assignments a using (iso_week, customer_id)
           where p.iso_week < %s and p.status = 'pushed'
             and coalesce(a.campaign_start, to_date(p.iso_week, 'IYYY-"W"IW') + 7) > %s
             and p.customer_id = any(%s)""",
        (iso_week, window_start),
    )
    if _table_exists(conn, "raw.call_outcomes"):
        add(
            "suppressed",
            """select distinct customer_id from raw.call_outcomes
               where called_at >= %s and called_at < %s and customer_id = any(%s)""",
            (window_start, campaign_start),
        )
    return reasons


# Candidates read from the call list at a time. The mart ranks every customer worth a
# call (509k rows at 10M orders); a campaign takes the first few hundred (capacity 200,
# plus the excluded and the holdout ranked among them), so the list is read through a
# server-side cursor, block by block, until the campaign is full: fetched whole, it
# took ~4 s a week (with the exclusions) to read rows that were never looked at.
CANDIDATE_BLOCK = 1000


def _assign(
    cand: dict[str, Any],
    reason: str | None,
    iso_week: str,
    campaign_start: datetime,
    settings: Settings,
    offers: OfferBook,
) -> Assignment:
    """One candidate's arm: excluded (with ``reason``, or not at risk), held out or treated."""
    customer_id = str(cand["customer_id"])
    payload = json.loads(json.dumps(cand, default=str))
    if reason is None and cand.get("intervention_level") not in ("yellow", "amber", "orange", "red"):
        reason = "not_at_risk"
    if reason is not None:
        arm, variant, offer = "excluded", None, None
    else:
        arm = "holdout" if in_holdout(customer_id, iso_week, settings.holdout_share) else "treatment"
        variant = script_variant(customer_id, iso_week, settings.script_variants)
        offer = offers.suggest(cand.get("rfm_segment"), cand.get("value_tier"))
    if offer is not None:
        payload["offer_text"] = offer.text
    return Assignment(
        iso_week=iso_week,
        customer_id=customer_id,
        call_rank=int(cand["call_rank"]),
        arm=arm,
        exclusion_reason=reason,
        variant=variant,
        offer_code=offer.code if offer else None,
        intervention_level=cand.get("intervention_level"),
        campaign_start=campaign_start,
        payload=payload,
    )


def plan_campaign(conn: psycopg.Connection, iso_week: str, settings: Settings) -> list[Assignment]:
    """The arms of this week's campaign, computed from the marts (nothing is written).
    Opens a server-side cursor: ``conn`` must not be in autocommit mode."""
    from psycopg.rows import dict_row

    _, campaign_start = week_interval(iso_week, settings.timezone)
    offers = OfferBook.from_seed(settings.dbt_project_dir)
    plan: list[Assignment] = []
    treated = 0
    with conn.cursor(name="retention_call_list_candidates", row_factory=dict_row) as cur:
        cur.execute("select * from marts.rpt_call_list order by call_rank")
        while treated < settings.call_list_capacity:
            candidates = cur.fetchmany(CANDIDATE_BLOCK)
            if not candidates:
                break
            ids = [str(c["customer_id"]) for c in candidates]
            excluded = exclusion_reasons(conn, iso_week, campaign_start, settings, ids)
            for cand, customer_id in zip(candidates, ids, strict=True):
                if treated >= settings.call_list_capacity:
                    break
                assignment = _assign(
                    cand, excluded.get(customer_id), iso_week, campaign_start, settings, offers
                )
                plan.append(assignment)
                if assignment.arm == "treatment":
                    treated += 1
    return plan


def ensure_campaign(conn: psycopg.Connection, iso_week: str, settings: Settings) -> list[Assignment]:
    """The campaign's assignments: planned and stored on the first call, read back after.
    An advisory lock keeps two concurrent runs of one week from planning twice."""
    conn.execute(
        "select pg_advisory_xact_lock(hashtext('retention_outreach_plan'), hashtext(%s))", (iso_week,)
    )
    stored = load_campaign(conn, iso_week)
    if stored:
        conn.commit()
        return stored
    plan = plan_campaign(conn, iso_week, settings)
    with conn.cursor() as cur:
        cur.executemany(
            """insert into ops.outreach_assignments (iso_week, customer_id, call_rank, arm, exclusion_reason,
                   variant, offer_code, intervention_level, campaign_start, payload, assigned_at)
               values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, clock_timestamp())
               on conflict do nothing""",
            [
                (
                    a.iso_week,
                    a.customer_id,
                    a.call_rank,
                    a.arm,
                    a.exclusion_reason,
                    a.variant,
                    a.offer_code,
                    a.intervention_level,
                    a.campaign_start,
                    json.dumps(a.payload),
                )
                for a in plan
            ],
        )
    conn.commit()
    return plan


def load_campaign(conn: psycopg.Connection, iso_week: str) -> list[Assignment]:
    rows = conn.execute(
        """select iso_week, customer_id, call_rank, arm, exclusion_reason, variant, offer_code,
                  intervention_level, campaign_start, payload
           from ops.outreach_assignments where iso_week = %s order by call_rank""",
        (iso_week,),
    ).fetchall()
    return [Assignment(*row) for row in rows]
