"""What the digest says, read from the marts in one place.

The digest only *reads* report-shaped marts (``rpt_*``, ``dim_customers``); every
metric is defined once in dbt, so nothing here recomputes a rate. The result is a
plain dataclass so the renderer can be tested with hand-built numbers and no database.

Contact data never leaves this module: the queries select no PII column of
``dim_customers`` at all, only counts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NotRequired, TypedDict

import sqlalchemy as sa

from retention_pipeline.weeks import parse_iso_week, week_interval

STAGES = ("active", "churn risk", "potential churn", "churned")
NO_ORDERS = "no orders"  # dim_customers.churn_stage is null for customers without orders
LEVELS = ("red", "orange", "amber", "yellow", "green")  # most urgent first
TIERS = ("A", "B", "C", "D")
TREND_WEEKS = 12
COHORT_MONTHS = 12
MAX_DETRACTOR_COMMENTS = 5
MAX_PROMOTER_COMMENTS = 3
MAX_HOT_SPOTS = 3
MAX_COMPLAINT_THEMES = 5
NEW = "new"  # rpt_stage_transitions.from_stage of a customer's first order

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")

_COUNT_COLUMNS = (
    "customers_at_start",
    "customers_at_end",
    "active_customers",
    "new_customers",
    "churned_customers",
    "reactivated_customers",
    "potential_or_churned_at_start",
    "orders",
    "survey_responses",
)
_MEASURE_COLUMNS = (
    "churn_rate",
    "retention_rate",
    "reactivation_rate",
    "revenue",
    "arpu",
    "average_check",
    "nps",
    "csi",
)


class DigestDataError(LookupError):
    """The marts cannot answer for the requested week (not built yet, or wrong week)."""


class QualityStatus(TypedDict):
    """How far the digest's numbers can be trusted; shown in the footer.

    ``checks_passed`` is None when the caller did not say (a manual render); the
    weekly DAG passes True because the digest only runs after the marts' gate.
    """

    checks_passed: bool | None
    freshness: datetime | None  # the newest raw._loaded_at
    checks: NotRequired[int]  # expectations evaluated by the gate
    warnings: NotRequired[int]


@dataclass(frozen=True)
class WeekKpis:
    """One row of ``marts.rpt_weekly_kpis``; rates are fractions, nps is -100..100."""

    iso_week: str
    week_start: date
    week_end: date  # exclusive
    customers_at_start: int | None = None
    customers_at_end: int | None = None
    active_customers: int | None = None
    new_customers: int | None = None
    churned_customers: int | None = None
    reactivated_customers: int | None = None
    potential_or_churned_at_start: int | None = None
    churn_rate: float | None = None
    retention_rate: float | None = None
    reactivation_rate: float | None = None
    revenue: float | None = None
    orders: int | None = None
    arpu: float | None = None
    average_check: float | None = None
    survey_responses: int | None = None
    nps: float | None = None
    csi: float | None = None


@dataclass(frozen=True)
class CohortMatrix:
    """Customer retention by first-order month (rows) and months since (columns)."""

    cohort_months: tuple[date, ...] = ()
    cohort_sizes: tuple[int, ...] = ()
    periods: tuple[int, ...] = ()
    retention: tuple[tuple[float | None, ...], ...] = ()  # [cohort][period]; None = not yet

    @property
    def is_empty(self) -> bool:
        return not self.cohort_months


@dataclass(frozen=True)
class SurveyComment:
    submitted_at: datetime
    score: int
    score_group: str  # promoter | passive | detractor
    comment: str
    channel: str | None = None


@dataclass(frozen=True)
class StageFlow:
    """Customers who moved ``from_stage`` -> ``to_stage`` during the week (one row of
    ``marts.rpt_stage_transitions``); ``from_stage`` may be NEW."""

    from_stage: str
    to_stage: str
    customers: int


@dataclass(frozen=True)
class HotSpot:
    """A group (RFM segment or manager) whose churned share rose week over week.

    Shares are of the group's customers with a stage in both weeks, so a customer's
    first order does not dilute the comparison.
    """

    group: str
    customers: int
    churned_before: int
    churned_now: int

    @property
    def share_before(self) -> float:
        return self.churned_before / self.customers if self.customers else 0.0

    @property
    def share_now(self) -> float:
        return self.churned_now / self.customers if self.customers else 0.0

    @property
    def rise(self) -> float:
        return self.share_now - self.share_before


@dataclass(frozen=True)
class CohortHotSpot:
    """The cohort furthest below the other cohorts at its latest observed month."""

    cohort_month: date
    months_since_first: int
    retention: float
    others_average: float


@dataclass(frozen=True)
class ComplaintTheme:
    subject: str
    tickets: int


@dataclass(frozen=True)
class CampaignVariant:
    """One variant's row of ``marts.rpt_campaign_results``; rates and uplift are fractions."""

    variant: str
    pushed: int
    reached: int
    agreed_to_return: int
    converted: int
    conversion_rate: float | None = None
    uplift: float | None = None
    uplift_ci_low: float | None = None
    uplift_ci_high: float | None = None
    retention_cost: float | None = None


@dataclass(frozen=True)
class CampaignResults:
    campaign: str  # the ISO week the calls were made
    variants: tuple[CampaignVariant, ...]

    def total(self, field: str) -> int:
        return sum(int(getattr(v, field)) for v in self.variants)


@dataclass(frozen=True)
class DigestData:
    iso_week: str
    week: WeekKpis
    # the trend, oldest first, ending with ``week``
    history: tuple[WeekKpis, ...]
    # churn stage -> customers, including NO_ORDERS
    stage_counts: dict[str, int]
    # (intervention level, value tier) -> customers
    risk_counts: dict[tuple[str, str], int]
    cohorts: CohortMatrix
    detractor_comments: tuple[SurveyComment, ...]
    promoter_comments: tuple[SurveyComment, ...]
    quality: QualityStatus
    # red/orange customers with an open complaint: the calls to make today
    urgent_with_open_complaint: int = 0
    customers_as_of: date | None = None
    # Sections fed by marts that may not exist yet: None (or empty) means "omit".
    stage_flows: tuple[StageFlow, ...] | None = None
    segment_hot_spots: tuple[HotSpot, ...] | None = None
    manager_hot_spots: tuple[HotSpot, ...] | None = None
    cohort_hot_spot: CohortHotSpot | None = None
    complaint_themes: tuple[ComplaintTheme, ...] | None = None
    complaints: int | None = None  # complaint tickets opened in the week
    sla_breach_rate: float | None = None
    campaign: CampaignResults | None = None

    @property
    def previous(self) -> WeekKpis | None:
        """Last week's row, for week-over-week change; None in the first reported week."""
        if len(self.history) >= 2 and self.history[-1].iso_week == self.iso_week:
            return self.history[-2]
        return None

    def risk_count(self, levels: tuple[str, ...], tiers: tuple[str, ...] = TIERS) -> int:
        return sum(n for (lvl, tier), n in self.risk_counts.items() if lvl in levels and tier in tiers)


def _schema(name: str) -> str:
    # Schema names are interpolated into SQL, so only plain identifiers are accepted.
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain schema name: {name!r}")
    return name


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _count(value: Any) -> int:
    # Rows of text() queries are untyped; counts arrive as int (bigint) or Decimal.
    return 0 if value is None else int(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _as_date(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else value


def _kpi_row(row: Mapping[Any, Any]) -> WeekKpis:
    values: dict[str, Any] = {c: _int(row[c]) for c in _COUNT_COLUMNS}
    values.update({c: _float(row[c]) for c in _MEASURE_COLUMNS})
    return WeekKpis(
        iso_week=str(row["iso_week"]),
        week_start=_as_date(row["week_start"]),
        week_end=_as_date(row["week_end"]),
        **values,
    )


def _load_history(conn: sa.Connection, marts: str, iso_week: str) -> tuple[WeekKpis, ...]:
    columns = ", ".join(("iso_week", "week_start", "week_end", *_COUNT_COLUMNS, *_MEASURE_COLUMNS))
    target = conn.execute(
        sa.text(f"select week_start from {marts}.rpt_weekly_kpis where iso_week = :week"),
        {"week": iso_week},
    ).scalar()
    if target is None:
        available = conn.execute(
            sa.text(f"select min(iso_week), max(iso_week) from {marts}.rpt_weekly_kpis")
        ).one()
        span = f"{available[0]}..{available[1]}" if available[0] else "none"
        raise DigestDataError(
            f"week {iso_week} is not in {marts}.rpt_weekly_kpis (weeks there: {span}); "
            "the digest can only be sent after dbt has built that week"
        )
    rows = conn.execute(
        sa.text(
            f"select {columns} from {marts}.rpt_weekly_kpis where week_start <= :start "
            "order by week_start desc limit :n"
        ),
        {"start": target, "n": TREND_WEEKS},
    ).mappings()
    return tuple(reversed([_kpi_row(r) for r in rows]))


def _load_stage_counts(conn: sa.Connection, marts: str) -> dict[str, int]:
    counts = dict.fromkeys((*STAGES, NO_ORDERS), 0)
    rows = conn.execute(
        sa.text(f"select churn_stage, count(*) from {marts}.dim_customers group by churn_stage")
    )
    for stage, n in rows:
        key = NO_ORDERS if stage is None else str(stage)
        counts[key] = counts.get(key, 0) + _count(n)
    return counts


def _load_risk(conn: sa.Connection, marts: str) -> tuple[dict[tuple[str, str], int], int, date | None]:
    rows = conn.execute(
        sa.text(
            f"select intervention_level, value_tier, count(*) from {marts}.dim_customers "
            "where intervention_level is not null and value_tier is not null "
            "group by intervention_level, value_tier"
        )
    )
    risk = {(str(level), str(tier)): _count(n) for level, tier, n in rows}
    urgent, as_of = conn.execute(
        sa.text(
            "select count(*) filter (where intervention_level in ('red', 'orange') "
            f"and coalesce(open_complaints, 0) > 0), max(as_of) from {marts}.dim_customers"
        )
    ).one()
    return risk, _count(urgent), None if as_of is None else _as_date(as_of)


def _load_cohorts(conn: sa.Connection, marts: str, week_end: date) -> CohortMatrix:
    # The newest cohorts, only those that had started by the end of the reported week,
    # so a re-run for an old week does not show months that had not happened yet.
    rows = conn.execute(
        sa.text(
            f"""
            with recent as (
                select distinct cohort_month from {marts}.rpt_cohort_retention_monthly
                where cohort_month < :week_end
                order by cohort_month desc limit :cohorts
            )
            select r.cohort_month, r.months_since_first, r.cohort_size, r.customer_retention
            from {marts}.rpt_cohort_retention_monthly as r
            join recent using (cohort_month)
            where r.months_since_first between 0 and :max_k
            order by r.cohort_month, r.months_since_first
            """
        ),
        {"week_end": week_end, "cohorts": COHORT_MONTHS, "max_k": COHORT_MONTHS - 1},
    ).all()
    if not rows:
        return CohortMatrix()
    months = sorted({_as_date(r[0]) for r in rows})
    periods = tuple(range(max(_count(r[1]) for r in rows) + 1))
    sizes: dict[date, int] = {}
    cells: dict[tuple[date, int], float | None] = {}
    for month, k, size, retention in rows:
        month = _as_date(month)
        sizes[month] = max(sizes.get(month, 0), _count(size))
        cells[(month, _count(k))] = _float(retention)
    return CohortMatrix(
        cohort_months=tuple(months),
        cohort_sizes=tuple(sizes[m] for m in months),
        periods=periods,
        retention=tuple(tuple(cells.get((m, k)) for k in periods) for m in months),
    )


def _load_comments(
    conn: sa.Connection, marts: str, start: datetime, end: datetime, group: str, limit: int
) -> tuple[SurveyComment, ...]:
    # Detractors worst first (the loudest signal), promoters best first; newest breaks ties.
    direction = "asc" if group == "detractor" else "desc"
    rows = conn.execute(
        sa.text(
            f"select submitted_at, score, score_group, comment, channel "
            f"from {marts}.rpt_survey_comments "
            "where score_group = :group and submitted_at >= :start and submitted_at < :end "
            "and nullif(btrim(comment), '') is not null "
            f"order by score {direction}, submitted_at desc, response_id limit :n"
        ),
        {"group": group, "start": start, "end": end, "n": limit},
    ).all()
    return tuple(
        SurveyComment(
            submitted_at=r[0],
            score=_count(r[1]),
            score_group=str(r[2]),
            comment=str(r[3]).strip(),
            channel=None if r[4] is None else str(r[4]),
        )
        for r in rows
    )


def _table_exists(conn: sa.Connection, schema: str, table: str) -> bool:
    return (
        conn.execute(sa.text("select to_regclass(:name) is not null"), {"name": f"{schema}.{table}"}).scalar()
        is True
    )


def _columns(conn: sa.Connection, schema: str, table: str) -> set[str]:
    rows = conn.execute(
        sa.text(
            "select column_name from information_schema.columns where table_schema = :s and table_name = :t"
        ),
        {"s": schema, "t": table},
    )
    return {str(name) for (name,) in rows}


def _load_stage_flows(conn: sa.Connection, marts: str, iso_week: str) -> tuple[StageFlow, ...] | None:
    # Built by another part of the pipeline; before it exists the section is left out.
    if not _table_exists(conn, marts, "rpt_stage_transitions"):
        return None
    rows = conn.execute(
        sa.text(
            f"select from_stage, to_stage, sum(customers) from {marts}.rpt_stage_transitions "
            "where iso_week = :week and customers > 0 group by from_stage, to_stage"
        ),
        {"week": iso_week},
    ).all()
    return tuple(
        StageFlow(str(f) if f is not None else NEW, str(t) if t is not None else NO_ORDERS, _count(n))
        for f, t, n in rows
    )


def _load_hot_spots(
    conn: sa.Connection, marts: str, previous_start: date, group_columns: Sequence[str]
) -> dict[str, tuple[HotSpot, ...]] | None:
    """Per column of ``group_columns``: its groups whose churned share rose most from the
    previous week to now.

    "Now" is ``dim_customers`` (the stages as of the run); "before" is the previous
    week's row of ``fct_customer_weekly_status`` (a row holds the stage at its week's
    end, like the stage history it is built from). Only customers staged in both weeks
    count, so the groups are the same people in both shares.

    One join of the two (1.8M customers at 10M orders), counted by every combination of
    the columns and summed per column here: a join per column took 1.9 s each.
    """
    if not _table_exists(conn, marts, "fct_customer_weekly_status"):
        return None
    groups = [f"coalesce(d.{column}::text, '?')" for column in group_columns]
    rows = conn.execute(
        sa.text(
            f"""
            select {", ".join(groups)},
                   count(*) as customers,
                   count(*) filter (where w.churn_stage = 'churned') as churned_before,
                   count(*) filter (where d.churn_stage = 'churned') as churned_now
            from {marts}.dim_customers as d
            join {marts}.fct_customer_weekly_status as w
              on w.customer_id = d.customer_id and w.week_start = :previous_start
            where d.churn_stage is not null and w.churn_stage is not null
            group by {", ".join(str(i + 1) for i in range(len(groups)))}
            """
        ),
        {"previous_start": previous_start},
    ).all()
    width = len(group_columns)
    out: dict[str, tuple[HotSpot, ...]] = {}
    for i, column in enumerate(group_columns):
        totals: dict[str, list[int]] = {}
        for row in rows:
            sums = totals.setdefault(str(row[i]), [0, 0, 0])
            for k in range(3):
                sums[k] += _count(row[width + k])
        spots = [HotSpot(g, n, b, c) for g, (n, b, c) in totals.items()]
        rising = sorted(
            (s for s in spots if s.churned_now > s.churned_before), key=lambda s: (-s.rise, s.group)
        )
        out[column] = tuple(rising[:MAX_HOT_SPOTS])
    return out


def cohort_hot_spot(cohorts: CohortMatrix) -> CohortHotSpot | None:
    """The cohort whose latest month is furthest below the average of the other cohorts
    at that same month; months 0 (100% by definition) and months nobody else reached
    are not compared."""
    best: CohortHotSpot | None = None
    for i, row in enumerate(cohorts.retention):
        observed = [k for k, v in enumerate(row) if v is not None]
        if not observed or observed[-1] == 0:
            continue
        k = observed[-1]
        value = row[k]
        others = [r[k] for j, r in enumerate(cohorts.retention) if j != i and r[k] is not None]
        if value is None or not others:
            continue
        average = sum(v for v in others if v is not None) / len(others)
        spot = CohortHotSpot(cohorts.cohort_months[i], cohorts.periods[k], value, average)
        if value < average and (best is None or value - average < best.retention - best.others_average):
            best = spot
    return best


def _load_complaints(
    conn: sa.Connection, staging: str, raw: str, start: datetime, end: datetime
) -> tuple[tuple[ComplaintTheme, ...] | None, int | None]:
    """Complaint tickets opened in the week, by subject (the helpdesk's theme field).

    Reads the staging view when dbt has built it (types normalised), else raw.
    """
    if _table_exists(conn, staging, "stg_helpdesk__tickets"):
        source, is_complaint = f"{staging}.stg_helpdesk__tickets", "is_complaint"
    elif _table_exists(conn, raw, "tickets"):
        source, is_complaint = f"{raw}.tickets", "lower(btrim(type::text)) = 'complaint'"
    else:
        return None, None
    where = f"where {is_complaint} and created_at::timestamptz >= :start and created_at::timestamptz < :end"
    params = {"start": start, "end": end, "n": MAX_COMPLAINT_THEMES}
    total = _count(conn.execute(sa.text(f"select count(*) from {source} {where}"), params).scalar())
    rows = conn.execute(
        sa.text(
            f"select min(btrim(subject)), count(*) from {source} {where} "
            "and nullif(btrim(subject), '') is not null "
            "group by lower(btrim(subject)) order by 2 desc, 1 limit :n"
        ),
        params,
    ).all()
    return tuple(ComplaintTheme(str(s), _count(n)) for s, n in rows), total


def _load_sla_breach_rate(conn: sa.Connection, marts: str, iso_week: str, week_start: date) -> float | None:
    """The week's SLA breach rate from ``rpt_service_quality``, when that mart exists.

    The mart may be per week or per week and manager: rows of the week are combined,
    weighted by their ticket count when the mart has one, and a company-wide row
    (manager null) is used alone when present.
    """
    if not _table_exists(conn, marts, "rpt_service_quality"):
        return None
    columns = _columns(conn, marts, "rpt_service_quality")
    if "sla_breach_rate" not in columns:
        return None
    if "iso_week" in columns:
        where, params = "where iso_week = :week", {"week": iso_week}
    elif "week_start" in columns:
        where, params = "where week_start = :start", {"start": week_start}  # type: ignore[dict-item]
    else:
        where, params = "", {}
    if "manager_id" in columns:
        overall = f"{where} {'and' if where else 'where'} manager_id is null"
        if conn.execute(
            sa.text(f"select count(*) from {marts}.rpt_service_quality {overall}"), params
        ).scalar():
            where = overall
    weight = next((c for c in ("tickets", "tickets_count", "tickets_with_sla") if c in columns), None)
    value = (
        f"sum(sla_breach_rate * {weight}) / nullif(sum({weight}) filter (where sla_breach_rate is not null), 0)"
        if weight
        else "avg(sla_breach_rate)"
    )
    rate = conn.execute(sa.text(f"select {value} from {marts}.rpt_service_quality {where}"), params).scalar()
    return _float(rate)


def _load_campaign(conn: sa.Connection, marts: str, iso_week: str) -> CampaignResults | None:
    # The latest campaign up to the reported week: a re-run for an old week shows what
    # was known then, not a later campaign.
    if not _table_exists(conn, marts, "rpt_campaign_results"):
        return None
    campaign = conn.execute(
        sa.text(f"select max(campaign) from {marts}.rpt_campaign_results where campaign <= :week"),
        {"week": iso_week},
    ).scalar()
    if campaign is None:
        return None
    rows = conn.execute(
        sa.text(
            "select variant, pushed, reached, agreed_to_return, converted, conversion_rate, uplift, "
            f"uplift_ci_low, uplift_ci_high, retention_cost from {marts}.rpt_campaign_results "
            "where campaign = :campaign order by variant"
        ),
        {"campaign": campaign},
    ).all()
    return CampaignResults(
        campaign=str(campaign),
        variants=tuple(
            CampaignVariant(
                variant=str(r[0]),
                pushed=_count(r[1]),
                reached=_count(r[2]),
                agreed_to_return=_count(r[3]),
                converted=_count(r[4]),
                conversion_rate=_float(r[5]),
                uplift=_float(r[6]),
                uplift_ci_low=_float(r[7]),
                uplift_ci_high=_float(r[8]),
                retention_cost=_float(r[9]),
            )
            for r in rows
        ),
    )


def _raw_freshness(conn: sa.Connection, raw: str) -> datetime | None:
    """The newest load in raw: each table's newest batch's ``_loaded_at``, the latest of them.

    Every raw table carries ``_loaded_at`` and ``_batch_id``; finding them by those columns
    picks up sources added later without a change here. A batch's rows share one
    ``_loaded_at`` and batch ids grow with time (see the dbt macro ``newest_load``), so
    one probe of each table's ``_batch_id`` index answers what ``max(_loaded_at)`` would
    read the whole table for.
    """
    rows = conn.execute(
        sa.text(
            "select table_name from information_schema.columns "
            "where table_schema = :schema and column_name in ('_loaded_at', '_batch_id') "
            "group by table_name having count(*) = 2 order by table_name"
        ),
        {"schema": raw},
    )
    tables = [str(name) for (name,) in rows]
    union = " union all ".join(
        f'(select _loaded_at from {raw}."{t}" order by _batch_id desc limit 1)' for t in tables
    )
    if not union:
        return None
    latest: datetime | None = conn.execute(sa.text(f"select max(m) from ({union}) as t(m)")).scalar()
    return latest


def _quality(conn: sa.Connection, raw: str, given: Mapping[str, Any] | None) -> QualityStatus:
    given = dict(given or {})
    status = QualityStatus(
        checks_passed=given.get("checks_passed"),
        freshness=given.get("freshness") or _raw_freshness(conn, raw),
    )
    # The weekly DAG's gate reports {"expectations": n, "warnings": m} and raises on failure.
    checks = given.get("checks", given.get("expectations"))
    if checks is not None:
        status["checks"] = int(checks)
        if status["checks_passed"] is None:
            status["checks_passed"] = True
    if given.get("warnings") is not None:
        status["warnings"] = int(given["warnings"])
    return status


def load_digest_data(
    engine: sa.Engine,
    iso_week: str,
    *,
    quality: Mapping[str, Any] | None = None,
    timezone: str = "UTC",
    marts_schema: str = "marts",
    raw_schema: str = "raw",
    staging_schema: str = "staging",
) -> DigestData:
    """Read everything the digest for ``iso_week`` shows, in one read-only transaction.

    ``quality`` is what the caller knows about the checks (``checks_passed``, and
    ``checks``/``expectations`` and ``warnings`` counts); ``freshness`` is read from the
    raw tables unless given. ``timezone`` is the business timezone that bounds the week
    for survey comments (the marts' week boundaries are computed in it too).
    """
    parse_iso_week(iso_week)
    marts, raw, staging = _schema(marts_schema), _schema(raw_schema), _schema(staging_schema)
    start, end = week_interval(iso_week, timezone)
    # Repeatable read: all numbers come from one snapshot even if dbt rebuilds meanwhile.
    snapshot = engine.execution_options(isolation_level="REPEATABLE READ")
    with snapshot.connect() as conn, conn.begin():
        history = _load_history(conn, marts, iso_week)
        week = history[-1]
        stage_counts = _load_stage_counts(conn, marts)
        risk, urgent, as_of = _load_risk(conn, marts)
        cohorts = _load_cohorts(conn, marts, week.week_end)
        detractors = _load_comments(conn, marts, start, end, "detractor", MAX_DETRACTOR_COMMENTS)
        promoters = _load_comments(conn, marts, start, end, "promoter", MAX_PROMOTER_COMMENTS)
        status = _quality(conn, raw, quality)
        flows = _load_stage_flows(conn, marts, iso_week)
        previous_start = week.week_start - timedelta(days=7)
        hot_spots = _load_hot_spots(conn, marts, previous_start, ("rfm_segment", "manager_id"))
        themes, complaints = _load_complaints(conn, staging, raw, start, end)
        sla = _load_sla_breach_rate(conn, marts, iso_week, week.week_start)
        campaign = _load_campaign(conn, marts, iso_week)
    return DigestData(
        iso_week=iso_week,
        week=week,
        history=history,
        stage_counts=stage_counts,
        risk_counts=risk,
        cohorts=cohorts,
        detractor_comments=detractors,
        promoter_comments=promoters,
        quality=status,
        urgent_with_open_complaint=urgent,
        customers_as_of=as_of,
        stage_flows=flows,
        segment_hot_spots=hot_spots["rfm_segment"] if hot_spots is not None else None,
        manager_hot_spots=hot_spots["manager_id"] if hot_spots is not None else None,
        cohort_hot_spot=cohort_hot_spot(cohorts),
        complaint_themes=themes,
        complaints=complaints,
        sla_breach_rate=sla,
        campaign=campaign,
    )
