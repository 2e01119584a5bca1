"""What the digest says, read from the marts in one place.

The digest only *reads* report-shaped marts (``rpt_*``, ``dim_customers``); every
metric is defined once in dbt, so nothing here recomputes a rate. The result is a
plain dataclass so the renderer can be tested with hand-built numbers and no database.

Contact data never leaves this module: the queries select no PII column of
``dim_customers`` at all, only counts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
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


def _raw_freshness(conn: sa.Connection, raw: str) -> datetime | None:
    # Every raw table carries _loaded_at; finding them by that column picks up sources
    # added later without a change here.
    rows = conn.execute(
        sa.text(
            "select table_name from information_schema.columns "
            "where table_schema = :schema and column_name = '_loaded_at' order by table_name"
        ),
        {"schema": raw},
    )
    tables = [str(name) for (name,) in rows]
    union = " union all ".join(f'select max(_loaded_at) from {raw}."{t}"' for t in tables)
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
) -> DigestData:
    """Read everything the digest for ``iso_week`` shows, in one read-only transaction.

    ``quality`` is what the caller knows about the checks (``checks_passed``, and
    ``checks``/``expectations`` and ``warnings`` counts); ``freshness`` is read from the
    raw tables unless given. ``timezone`` is the business timezone that bounds the week
    for survey comments (the marts' week boundaries are computed in it too).
    """
    parse_iso_week(iso_week)
    marts, raw = _schema(marts_schema), _schema(raw_schema)
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
    )
