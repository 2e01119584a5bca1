"""The dbt marts, checked against an independent recomputation and against time travel.

The recomputation reads the raw tables with pandas and applies the definitions as the
docs state them (RFM with cume_dist-style quantile scores, the individual expected gap,
churn stages, monthly cohorts); it shares no SQL with the models, so a wrong join or
filter in dbt shows up as a row that differs. Thresholds are read from
``dbt_project.yml`` and the seeds, the single place the business changes them.

The time-travel test rebuilds an old week after newer data has arrived: every
computation is keyed to ``as_of``, so the old week's marts must not change.
"""

from __future__ import annotations

import csv
import json
import math
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from retention_pipeline import dbt_config, loading, sample_data, warehouse
from retention_pipeline.config import get_settings
from retention_pipeline.dbt_config import dbt_cli_args, run_dbt

pytestmark = pytest.mark.integration

AS_OF = datetime(2026, 11, 23, tzinfo=UTC)
EARLIER_AS_OF = datetime(2026, 11, 16, tzinfo=UTC)
ENTITIES = ("customers", "orders", "tickets", "surveys")
# the event time of each entity: rows after an as-of moment must not change its answer
EVENT_TIME = {
    "customers": "created_at",
    "orders": "ordered_at",
    "tickets": "created_at",
    "surveys": "submitted_at",
}
# every mart whose answer for a past as_of must not depend on data that arrived later
TIME_TRAVEL_MARTS = (
    "dim_customers",
    "rpt_weekly_kpis",
    "rpt_monthly_kpis",
    "rpt_stage_transitions",
    "rpt_cohort_retention_monthly",
    "rpt_cohort_retention_weekly",
    "rpt_service_quality",
    "rpt_satisfaction_quarterly",
    "rpt_call_list",
    "rpt_survey_comments",
    "fct_customer_weekly_status",
)
FLOAT_TOLERANCE = 1e-6


# --- loading and building ----------------------------------------------------------


def _load(landing: Path, interval_end: datetime) -> None:
    """Land and publish every entity's new files, as the ingest DAG does."""
    with warehouse.connect() as conn:
        for entity in ENTITIES:
            batch = loading.land_files(conn, entity, landing, interval_end - timedelta(days=1), interval_end)
            if batch is not None:
                loading.publish_batch(conn, batch.batch_id)


def _build(as_of: datetime) -> None:
    """Seeds, models and data tests in one dbt process (``build`` loads the seeds too, so a
    separate ``dbt seed`` would only cost another parse)."""
    run_dbt(["build", "--exclude", "test_type:unit"], vars_={"as_of": as_of.isoformat()})


def _read(query: str) -> pd.DataFrame:
    engine = warehouse.engine()
    try:
        with engine.connect() as conn:
            return pd.read_sql(sa.text(query), conn)
    finally:
        engine.dispose()


def _dbt_vars() -> dict[str, Any]:
    project = get_settings().dbt_project_dir / "dbt_project.yml"
    variables: dict[str, Any] = yaml.safe_load(project.read_text(encoding="utf-8"))["vars"]
    return variables


def _seed(name: str) -> list[dict[str, str]]:
    path = get_settings().dbt_project_dir / "seeds" / f"{name}.csv"
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


# --- the independent recomputation ----------------------------------------------------


def _round(value: Fraction | Decimal, places: int) -> Decimal:
    """PostgreSQL's numeric round(): half away from zero (Python's round() is half-even)."""
    if isinstance(value, Fraction):
        value = Decimal(value.numerator) / Decimal(value.denominator)
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _quantile_scores(values: pd.Series, bins: int, *, higher_is_better: bool) -> pd.Series:
    """score = max(1, ceil(cume_dist * bins)) with cume_dist = rank(method='max', pct=True)
    over the values ordered worst first; exact fractions, so 3/5 * 5 is exactly 3."""
    ordered = values if higher_is_better else -values
    ranks = ordered.rank(method="max").astype(int)
    n = len(values)
    return ranks.map(lambda r: max(1, math.ceil(Fraction(int(r), n) * bins)))


def _completed_orders(as_of: datetime) -> pd.DataFrame:
    orders = _read("select order_id, customer_id, ordered_at, status, amount from raw.orders")
    orders["status"] = orders["status"].str.strip().str.lower()
    orders["ordered_at"] = pd.to_datetime(orders["ordered_at"], utc=True)
    done = orders[(orders["status"] == "completed") & (orders["ordered_at"] < pd.Timestamp(as_of))].copy()
    done["amount"] = done["amount"].map(lambda a: Decimal(str(a)))
    done["ordered_date"] = done["ordered_at"].dt.tz_convert("UTC").dt.date
    return done


def _expected_customers(as_of: datetime) -> pd.DataFrame:
    """RFM, expected gap, churn stage and value per customer with orders, from raw."""
    variables = _dbt_vars()
    bins = int(variables["rfm_bins"])
    done = _completed_orders(as_of)
    trailing_from = pd.Timestamp(as_of) - pd.DateOffset(months=int(variables["trailing_revenue_months"]))

    per_customer = done.groupby("customer_id").agg(
        first_order_at=("ordered_at", "min"),
        last_order_at=("ordered_at", "max"),
        orders_count=("order_id", "count"),
        net_revenue=("amount", lambda s: sum(s, Decimal(0))),
    )
    trailing = (
        done[done["ordered_at"] >= trailing_from]
        .groupby("customer_id")["amount"]
        .agg(lambda s: sum(s, Decimal(0)))
    )
    per_customer["trailing_12m_revenue"] = trailing.reindex(per_customer.index).map(
        lambda v: Decimal(0) if pd.isna(v) else v
    )
    per_customer["recency_days"] = (
        (pd.Timestamp(as_of) - per_customer["last_order_at"]) // pd.Timedelta(days=1)
    ).astype(int)

    # gaps between distinct order dates; the population's typical first-to-second gap
    days = (
        done[["customer_id", "ordered_date"]].drop_duplicates().sort_values(["customer_id", "ordered_date"])
    )
    days["gap"] = (
        days.groupby("customer_id")["ordered_date"].diff().map(lambda d: d.days if pd.notna(d) else None)
    )
    days["day_number"] = days.groupby("customer_id").cumcount() + 1
    own_median = days.dropna(subset=["gap"]).groupby("customer_id")["gap"].median()
    population_median = float(days.loc[days["day_number"] == 2, "gap"].astype(float).median())
    min_orders = int(variables["min_orders_for_own_rhythm"])
    floor_days = float(variables["min_expected_gap_days"])

    def expected_gap(row: pd.Series) -> Decimal:
        own = own_median.get(row.name)
        gap = float(own) if row["orders_count"] >= min_orders and own is not None else population_median
        return Decimal(str(max(floor_days, gap)))

    per_customer["expected_gap_days"] = per_customer.apply(expected_gap, axis=1)
    per_customer["gap_ratio"] = [
        _round(Decimal(r) / g, 4)
        for r, g in zip(per_customer["recency_days"], per_customer["expected_gap_days"], strict=True)
    ]
    thresholds = [
        (Decimal(str(variables["stage_churn_risk_ratio"])), "active"),
        (Decimal(str(variables["stage_potential_churn_ratio"])), "churn risk"),
        (Decimal(str(variables["stage_churned_ratio"])), "potential churn"),
    ]
    per_customer["churn_stage"] = per_customer["gap_ratio"].map(
        lambda ratio: next((stage for limit, stage in thresholds if ratio < limit), "churned")
    )

    # RFM: R worst = most days since the last order; F and M worst = the smallest
    per_customer["r_score"] = _quantile_scores(per_customer["recency_days"], bins, higher_is_better=False)
    per_customer["f_score"] = _quantile_scores(per_customer["orders_count"], bins, higher_is_better=True)
    per_customer["m_score"] = _quantile_scores(
        per_customer["net_revenue"].astype(float), bins, higher_is_better=True
    )
    per_customer["rfm_cell"] = (
        per_customer["r_score"].astype(str)
        + per_customer["f_score"].astype(str)
        + per_customer["m_score"].astype(str)
    )
    segments = {(int(s["r_score"]), int(s["fm_score"])): s["segment"] for s in _seed("rfm_segment_map")}

    def segment(row: pd.Series) -> str:
        def scaled(score: int) -> int:
            return math.ceil(Fraction(score * 5, bins))

        fm = _round(Fraction(scaled(row["f_score"]) + scaled(row["m_score"]), 2), 0)
        return segments[(scaled(row["r_score"]), int(fm))]

    per_customer["rfm_segment"] = per_customer.apply(segment, axis=1)

    # value: to date, the 12-month forecast, the share of trailing revenue
    survival = {s["churn_stage"]: Decimal(s["survival_factor"]) for s in _seed("clv_stage_survival")}
    horizon = Decimal(int(variables["clv_horizon_days"]))
    per_customer["clv_12m_forecast"] = [
        horizon / gap * (revenue / count) * survival[stage]
        for gap, revenue, count, stage in zip(
            per_customer["expected_gap_days"],
            per_customer["net_revenue"],
            per_customer["orders_count"],
            per_customer["churn_stage"],
            strict=True,
        )
    ]
    total_trailing = sum(per_customer["trailing_12m_revenue"], Decimal(0))
    per_customer["revenue_share"] = per_customer["trailing_12m_revenue"].map(lambda v: v / total_trailing)
    return per_customer


def _expected_monthly_cohorts(as_of: datetime) -> pd.DataFrame:
    variables = _dbt_vars()
    done = _completed_orders(as_of)
    done["order_month"] = done["ordered_date"].map(lambda d: date(d.year, d.month, 1))
    done["cohort_month"] = done.groupby("customer_id")["order_month"].transform("min")
    window_start = (
        pd.Timestamp(as_of) - pd.DateOffset(months=int(variables["cohort_history_months"]))
    ).date()
    last = (as_of - timedelta(microseconds=1)).date()
    last_month = date(last.year, last.month, 1)

    rows = []
    for cohort_month, cohort in done[done["cohort_month"] >= window_start].groupby("cohort_month"):
        size = cohort["customer_id"].nunique()
        first_revenue: Decimal | None = None
        month, k = cohort_month, 0
        while month <= last_month:
            in_month = cohort[cohort["order_month"] == month]
            revenue = sum(in_month["amount"], Decimal(0))
            first_revenue = revenue if k == 0 else first_revenue
            retained = in_month["customer_id"].nunique()
            rows.append(
                {
                    "cohort_month": cohort_month,
                    "months_since_first": k,
                    "cohort_size": size,
                    "retained_customers": retained,
                    "customer_retention": float(_round(Fraction(retained, size), 4)),
                    "revenue": float(revenue),
                    "revenue_retention": float(_round(revenue / first_revenue, 4)) if first_revenue else None,
                }
            )
            month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
            k += 1
    return pd.DataFrame(rows)


def _expected_period_orders(done: pd.DataFrame, periods: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    """Completed orders (``done``, from :func:`_completed_orders`) and their revenue per
    reported period [start, end) (UTC dates, the tests' business time zone): what the KPI
    marts read off the stage flows' differences of cumulative totals must add up to this."""
    rows = []
    for period in periods.itertuples():
        start_day, end_day = getattr(period, start), getattr(period, end)
        in_period = done[(done["ordered_date"] >= start_day) & (done["ordered_date"] < end_day)]
        rows.append(
            {
                start: start_day,
                "orders": len(in_period),
                "revenue": float(sum(in_period["amount"], Decimal(0))),
            }
        )
    return pd.DataFrame(rows)


# --- comparisons ---------------------------------------------------------------------


def _assert_same_rows(
    actual: pd.DataFrame, expected: pd.DataFrame, key: list[str], floats: list[str]
) -> None:
    """Row for row: same keys, exact ints and strings, floats within FLOAT_TOLERANCE."""
    columns = list(expected.columns)
    actual = actual[columns].sort_values(key).reset_index(drop=True)
    expected = expected.sort_values(key).reset_index(drop=True)
    assert len(actual) == len(expected), f"{len(actual)} rows in the mart, {len(expected)} recomputed"
    assert actual[key].astype(str).equals(expected[key].astype(str)), "the marts' keys differ"
    for column in columns:
        if column in key:
            continue
        if column in floats:
            got = pd.to_numeric(actual[column], errors="coerce").astype(float)
            want = pd.to_numeric(expected[column], errors="coerce").astype(float)
            both_null = got.isna() & want.isna()
            close = (got - want).abs() <= FLOAT_TOLERANCE
            bad = ~(both_null | close)
        else:
            bad = actual[column].astype(str) != expected[column].astype(str)
        assert not bad.any(), (
            f"{column} differs for {int(bad.sum())} rows, e.g.\n"
            f"{pd.concat([actual.loc[bad, [*key, column]], expected.loc[bad, [column]]], axis=1).head()}"
        )


# the contracts' type names that pg_catalog's format_type spells differently
TYPE_ALIASES = {"timestamptz": "timestamp with time zone"}


def _assert_contracts_hold_in_the_warehouse() -> None:
    """Every contracted table carries what its contract declares: the columns' types,
    NOT NULL where declared, and one check constraint per declared check. (dbt's own
    path creates the table with them; macros/create_table_as.sql adds them after a
    ``create table as``, and a table missing them would take bad rows silently.)"""
    manifest = json.loads(dbt_config.manifest_path().read_text(encoding="utf-8"))
    contracted = [
        node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
        and node["config"]["contract"]["enforced"]
        and node["config"]["materialized"] in ("table", "incremental")
    ]
    assert len(contracted) >= 5, "the marts and histories are contracted"
    for node in contracted:
        schema, table = node["schema"], node["alias"]
        columns = _read(
            "select a.attname as name, format_type(a.atttypid, a.atttypmod) as data_type, "
            "a.attnotnull as not_null from pg_attribute as a "
            f"where a.attrelid = '{schema}.{table}'::regclass and a.attnum > 0 and not a.attisdropped"
        ).set_index("name")
        checks = _read(
            "select pg_get_constraintdef(oid) as definition from pg_constraint "
            f"where conrelid = '{schema}.{table}'::regclass and contype = 'c'"
        )["definition"]
        declared_checks = [c for c in node["constraints"] if c["type"] == "check"]
        for column in node["columns"].values():
            declared_type = column["data_type"].replace(", ", ",")
            actual_type = columns.loc[column["name"], "data_type"].replace(", ", ",")
            assert TYPE_ALIASES.get(declared_type, declared_type) == actual_type, (table, column["name"])
            column_checks = [c for c in column["constraints"] if c["type"] == "check"]
            declared_checks += column_checks
            declared_not_null = any(c["type"] in ("not_null", "primary_key") for c in column["constraints"])
            assert bool(columns.loc[column["name"], "not_null"]) == declared_not_null, (table, column["name"])
        assert len(checks) == len(declared_checks), (table, list(checks))


def test_marts_match_an_independent_recomputation(warehouse_db: object, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    sample_data.generate(landing, end=AS_OF.date(), customers=400, seed=7)
    _load(landing, AS_OF)
    _build(AS_OF)
    _assert_contracts_hold_in_the_warehouse()
    # the first build writes each history period end by period end (readers take one
    # or a few ends): the planner's statistics see the rows in that order on disk
    for history, period_end in (
        ("int_customer_stage_history_weekly", "week_end_at"),
        ("int_customer_stage_history_monthly", "month_end_at"),
    ):
        correlation = _read(
            "select correlation from pg_stats where schemaname = 'intermediate' "
            f"and tablename = '{history}' and attname = '{period_end}'"
        )["correlation"]
        assert correlation.iloc[0] > 0.99, (history, correlation.iloc[0])

    expected = _expected_customers(AS_OF)
    mart = _read("select * from marts.dim_customers where has_orders")
    assert len(mart) > 300, "the sample should give a few hundred customers with orders"

    exact = expected.reset_index()[
        [
            "customer_id",
            "orders_count",
            "recency_days",
            "r_score",
            "f_score",
            "m_score",
            "rfm_cell",
            "rfm_segment",
            "churn_stage",
        ]
    ]
    _assert_same_rows(mart, exact, key=["customer_id"], floats=[])

    numeric = expected.reset_index()[
        [
            "customer_id",
            "net_revenue",
            "trailing_12m_revenue",
            "expected_gap_days",
            "gap_ratio",
            "revenue_share",
        ]
    ].assign(historical_clv=lambda d: d["net_revenue"])
    for column in numeric.columns[1:]:
        numeric[column] = numeric[column].astype(float)
    _assert_same_rows(
        mart,
        numeric,
        key=["customer_id"],
        floats=list(numeric.columns[1:]),
    )
    # the forecast is stored rounded to cents: half a cent is the largest honest difference
    forecast = expected["clv_12m_forecast"].astype(float).sort_index()
    stored = mart.set_index("customer_id")["clv_12m_forecast"].astype(float).sort_index()
    assert (forecast - stored).abs().max() <= 0.005 + FLOAT_TOLERANCE

    # every stage occurs in a realistic base, so the thresholds are really exercised
    assert set(expected["churn_stage"]) == {"active", "churn risk", "potential churn", "churned"}

    # every reported week's and month's completed orders and revenue, the current partial
    # month included, equal a plain sum over raw's orders
    done = _completed_orders(AS_OF)
    for mart, start, end, reported in (
        ("rpt_weekly_kpis", "week_start", "week_end", "kpi_history_weeks"),
        ("rpt_monthly_kpis", "month_start", "month_end", "kpi_history_months"),
    ):
        kpis = _read(f"select {start}, {end}, orders, revenue from marts.{mart}")
        assert len(kpis) == int(_dbt_vars()[reported]), f"{mart}: one row per reported period"
        assert kpis["orders"].sum() > 0, f"{mart}: no orders to compare"
        _assert_same_rows(
            kpis,
            _expected_period_orders(done, kpis, start, end),
            key=[start],
            floats=["revenue"],
        )

    cohorts = _expected_monthly_cohorts(AS_OF)
    assert len(cohorts) >= 12 * 13 // 2, "12 monthly cohorts, each with its months since the first"
    _assert_same_rows(
        _read("select * from marts.rpt_cohort_retention_monthly"),
        cohorts,
        key=["cohort_month", "months_since_first"],
        floats=["customer_retention", "revenue", "revenue_retention"],
    )


def _newer_rows_only(source: Path, target: Path, since: datetime) -> int:
    """Copy each entity's daily files keeping only rows whose event time is at or after
    ``since``: data that arrives later but describes later events."""
    kept = 0
    for entity in ENTITIES:
        (target / entity).mkdir(parents=True, exist_ok=True)
        for path in sorted((source / entity).glob(f"{entity}_2*.csv")):
            with path.open(encoding="utf-8", newline="") as f:
                reader = csv.DictReader(f)
                rows = []
                for row in reader:
                    try:
                        at = datetime.fromisoformat(row[EVENT_TIME[entity]])
                    except ValueError:
                        continue  # the generator's deliberately bad rows: quarantine's business
                    if at >= since:
                        rows.append(row)
                fields = reader.fieldnames or []
            with (target / entity / path.name).open("w", encoding="utf-8", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fields)
                writer.writeheader()
                writer.writerows(rows)
            kept += len(rows)
    return kept


def _snapshot() -> dict[str, pd.DataFrame]:
    tables = {}
    for mart in TIME_TRAVEL_MARTS:
        table = _read(f"select * from marts.{mart}")
        tables[mart] = table.sort_values(list(table.columns)).reset_index(drop=True)
    return tables


def test_an_old_week_rebuilt_after_newer_data_arrived_is_unchanged(
    warehouse_db: object, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    sample_data.generate(
        landing, end=AS_OF.date(), customers=400, seed=11, daily_from=EARLIER_AS_OF.date(), bad_rows=False
    )
    _load(landing, EARLIER_AS_OF)  # the history file only: what was known on 2026-11-16
    _build(EARLIER_AS_OF)
    before = _snapshot()
    orders_before = _read("select count(*) as n from raw.orders")["n"].iloc[0]

    newer = tmp_path / "newer"
    assert _newer_rows_only(landing, newer, EARLIER_AS_OF) > 0
    _load(newer, AS_OF)
    orders_after = _read("select count(*) as n from raw.orders")["n"].iloc[0]
    assert orders_after > orders_before, "newer orders must have arrived for the test to mean anything"

    _build(EARLIER_AS_OF)
    after = _snapshot()
    for mart in ("dim_customers", "rpt_weekly_kpis", "rpt_stage_transitions", "fct_customer_weekly_status"):
        assert len(before[mart]) > 0, f"{mart} is empty: nothing to compare"
    for mart in TIME_TRAVEL_MARTS:
        pd.testing.assert_frame_equal(after[mart], before[mart], obj=f"marts.{mart}")


# the per-period models kept incrementally by period end (loaded_through aside, a full
# rebuild must give them back row for row)
PERIOD_HISTORIES = tuple(
    f"{model}_{grain}"
    for model in ("int_customer_stage_history", "int_stage_flows", "int_revenue_concentration")
    for grain in ("weekly", "monthly")
)
# kept incrementally by customer, compared with a rebuild the same way
INCREMENTAL_TABLES = ("int_customer_order_steps", *PERIOD_HISTORIES)


def _stage_history(model: str) -> pd.DataFrame:
    table = _read(f"select * from intermediate.{model}").drop(columns="loaded_through")
    return table.sort_values(list(table.columns)).reset_index(drop=True)


def test_an_incremental_week_recomputes_only_what_new_data_touches_and_equals_a_full_rebuild(
    warehouse_db: object, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    sample_data.generate(
        landing, end=AS_OF.date(), customers=400, seed=5, daily_from=EARLIER_AS_OF.date(), bad_rows=False
    )
    _load(landing, EARLIER_AS_OF)
    _build(EARLIER_AS_OF)

    # the new week's orders, plus a late refund of an order placed five weeks earlier and
    # an old order moved to another customer (a merge of two accounts)
    newer = tmp_path / "newer"
    assert _newer_rows_only(landing, newer, EARLIER_AS_OF) > 0
    refunded = _read(
        f"""select * from raw.orders where status = 'completed'
              and ordered_at < timestamptz '{EARLIER_AS_OF.isoformat()}' - interval '33 days'
            order by ordered_at desc, order_id limit 1"""
    ).iloc[0]
    # (placed after the refunded one, so the weeks before that stay untouched below, by a
    # customer with other orders and none in the new files: only the move touches them)
    ordering_again = set()
    for path in (newer / "orders").glob("*.csv"):
        with path.open(encoding="utf-8", newline="") as f:
            ordering_again |= {row["customer_id"] for row in csv.DictReader(f)}
    candidates = _read(
        f"""select o.* from raw.orders o
            where o.status = 'completed' and o.customer_id <> '{refunded["customer_id"]}'
              and o.ordered_at > timestamptz '{refunded["ordered_at"].isoformat()}'
              and (select count(*) from raw.orders mine
                   where mine.customer_id = o.customer_id and mine.status = 'completed') >= 2
            order by o.ordered_at, o.order_id"""
    )
    moved = candidates[~candidates["customer_id"].isin(ordering_again)].iloc[0]
    new_owner = _read(
        f"select min(customer_id) as c from raw.orders where customer_id not in "
        f"('{moved['customer_id']}', '{refunded['customer_id']}')"
    ).iloc[0]["c"]
    assert moved["customer_id"] not in ordering_again
    # a customer whose only completed order is refunded leaves the history from then on
    lone = _read(
        f"""select o.* from raw.orders o
            where o.status = 'completed'
              and o.ordered_at < timestamptz '{EARLIER_AS_OF.isoformat()}' - interval '33 days'
              and o.customer_id not in ('{refunded["customer_id"]}', '{moved["customer_id"]}', '{new_owner}')
              and (select count(*) from raw.orders mine
                   where mine.customer_id = o.customer_id and mine.status = 'completed') = 1
            order by o.ordered_at desc, o.order_id limit 1"""
    ).iloc[0]
    assert lone["customer_id"] not in ordering_again
    # an order corrected to a later time, from a week before the refunded one: raw shows
    # only its new time, and the weeks between its old time and the refund change too
    retimed = _read(
        f"""select o.* from raw.orders o
            where o.status = 'completed'
              and o.ordered_at < timestamptz '{refunded["ordered_at"].isoformat()}' - interval '7 days'
              and o.customer_id not in (
                  '{refunded["customer_id"]}', '{moved["customer_id"]}', '{new_owner}', '{lone["customer_id"]}'
              )
              -- an earlier order keeps them in the history, so the weeks between are rewritten
              and exists (select from raw.orders earlier
                          where earlier.customer_id = o.customer_id and earlier.status = 'completed'
                            and earlier.ordered_at < o.ordered_at)
            order by o.ordered_at desc, o.order_id limit 50"""
    )
    retimed = retimed[~retimed["customer_id"].isin(ordering_again)].iloc[0]
    retimed_to = EARLIER_AS_OF - timedelta(days=3)
    assert (
        _read(
            f"""select count(*) as n from intermediate.int_customer_stage_history_weekly
            where customer_id = '{lone["customer_id"]}'"""
        ).iloc[0]["n"]
        >= 4
    )
    with (newer / "orders" / "orders_refunds_2026-11-18.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["order_id", "customer_id", "ordered_at", "status", "amount", "currency", "updated_at"]
        )

        def changed(order: Any, status: str, customer_id: str | None = None, ordered_at: Any = None) -> None:
            # the stored order as a later export line: same id and amount, changed fields
            writer.writerow(
                [
                    order["order_id"],
                    customer_id or order["customer_id"],
                    (ordered_at or order["ordered_at"]).isoformat(),
                    status,
                    order["amount"],
                    order["currency"],
                    "2026-11-18T09:00:00+00:00",
                ]
            )

        changed(refunded, "refunded")
        changed(lone, "refunded")
        changed(retimed, "completed", ordered_at=retimed_to)
        changed(moved, "completed", customer_id=new_owner)
    # a stored week end whose population first-gap median no longer matches (as when a
    # late change moves it) must be recomputed for every customer, not only the changed
    tampered_end = EARLIER_AS_OF - timedelta(days=7)
    with warehouse.connect() as conn:
        conn.execute(
            "update intermediate.int_customer_stage_history_weekly set population_gap_days = -1 "
            "where week_end_at = %s",
            (tampered_end,),
        )
        conn.commit()
    _load(newer, AS_OF)
    _build(AS_OF)

    # the order steps were recomputed for the customers whose orders changed, the others kept
    steps = _read("select customer_id, order_id, loaded_through from intermediate.int_customer_order_steps")
    seen_by_customer = steps.groupby("customer_id")["loaded_through"].max()
    latest_steps = seen_by_customer.max()
    for customer in (refunded["customer_id"], moved["customer_id"], new_owner, retimed["customer_id"]):
        assert seen_by_customer[customer] == latest_steps, customer
    assert (seen_by_customer < latest_steps).sum() > len(seen_by_customer) / 2
    owners = steps[steps["order_id"] == moved["order_id"]]["customer_id"].tolist()
    assert owners == [new_owner]
    assert refunded["order_id"] not in set(steps["order_id"])

    # week ends before the retimed order's old time kept the stages computed a week ago ...
    kept = _read(
        """select week_end_at, max(loaded_through) as seen from intermediate.int_customer_stage_history_weekly
           group by 1 order by 1"""
    )
    latest = kept["seen"].max()
    untouched = kept[kept["week_end_at"] <= retimed["ordered_at"]]
    recomputed = kept[kept["week_end_at"] > retimed["ordered_at"]]
    assert len(untouched) >= 6 and (untouched["seen"] < latest).all()
    assert len(recomputed) >= 5 and (recomputed["seen"] == latest).all()
    # ... and at the week ends it kept but that late changes reach, only the customers
    # whose orders changed before the week end were recomputed: the rest kept their rows
    stored_before = kept[kept["week_end_at"] <= EARLIER_AS_OF]
    redone = _read(
        f"""select week_end_at, customer_id from intermediate.int_customer_stage_history_weekly
            where loaded_through = {int(latest)}
              and week_end_at > timestamptz '{refunded["ordered_at"].isoformat()}'
              and week_end_at <= timestamptz '{EARLIER_AS_OF.isoformat()}'"""
    )
    customers_at = _read(
        """select week_end_at, count(*) as n from intermediate.int_customer_stage_history_weekly
           group by 1"""
    ).set_index("week_end_at")["n"]
    assert len(stored_before[stored_before["week_end_at"] > refunded["ordered_at"]]) >= 4
    for week_end, customers in redone.groupby("week_end_at")["customer_id"]:
        if week_end == tampered_end:
            assert len(customers) == customers_at[week_end], "the tampered week end is recomputed whole"
        else:
            assert len(customers) < customers_at[week_end] / 4, week_end
        assert refunded["customer_id"] in set(customers), week_end
    assert tampered_end in set(redone["week_end_at"])
    assert (
        _read(
            f"""select count(*) as n from intermediate.int_customer_stage_history_weekly
                where customer_id = '{lone["customer_id"]}'
                  and week_end_at > timestamptz '{lone["ordered_at"].isoformat()}'"""
        ).iloc[0]["n"]
        == 0
    )
    # the weekly flows and the 80/20 check follow the history: weeks that end before the
    # retimed order's old time kept last week's counts
    for model in ("int_stage_flows_weekly", "int_revenue_concentration_weekly"):
        seen = _read(f"select week_end_at, max(loaded_through) as seen from intermediate.{model} group by 1")
        assert (seen[seen["week_end_at"] <= retimed["ordered_at"]]["seen"] < latest).all(), model
        assert (seen[seen["week_end_at"] > retimed["ordered_at"]]["seen"] == latest).all(), model
        assert len(seen[seen["week_end_at"] <= retimed["ordered_at"]]) >= 5, model

    # ... and the result is what a rebuild from scratch gives
    incremental = {model: _stage_history(model) for model in INCREMENTAL_TABLES}
    marts = _snapshot()
    run_dbt(
        [
            "build",
            "--full-refresh",
            "--select",
            "int_customer_order_steps",
            "int_customer_stage_history_weekly+",
            "int_customer_stage_history_monthly+",
            "--exclude",
            "test_type:unit",
            "fct_customer_weekly_status",
        ],
        vars_={"as_of": AS_OF.isoformat()},
    )
    for model in INCREMENTAL_TABLES:
        assert len(incremental[model]) > 0, f"{model} is empty: nothing to compare"
        pd.testing.assert_frame_equal(_stage_history(model), incremental[model], obj=model)
    rebuilt = _snapshot()
    for mart in TIME_TRAVEL_MARTS:
        pd.testing.assert_frame_equal(rebuilt[mart], marts[mart], obj=f"marts.{mart}")

    # A changed threshold recomputes what was stored with the old one: the incremental
    # build with the new setting equals a rebuild from scratch with it, and it differs from
    # the old answer (or the check would mean nothing).
    changed = {"as_of": AS_OF.isoformat(), "stage_churned_ratio": 2.6}
    models = ("int_customer_stage_history_weekly", "int_stage_flows_weekly")
    selection = ["--select", *models, "--exclude", "test_type:unit"]
    run_dbt(["build", *selection], vars_=changed)
    after_change = {model: _stage_history(model) for model in models}
    stages_before = incremental["int_customer_stage_history_weekly"]["churn_stage"].value_counts()
    assert (
        not after_change["int_customer_stage_history_weekly"]["churn_stage"]
        .value_counts()
        .equals(stages_before)
    )
    run_dbt(["build", "--full-refresh", *selection], vars_=changed)
    for model, table in after_change.items():
        pd.testing.assert_frame_equal(_stage_history(model), table, obj=f"{model} after a var change")

    # A table stored before it had settings_key, or the flows' orders and revenue (an
    # upgraded deployment), gets the columns and is recomputed whole on its next
    # incremental run, not mixed with old rows nor left with empty columns.
    for dropped in (["settings_key"], ["orders", "revenue"]):
        with warehouse.connect() as conn:
            for column in dropped:
                conn.execute(f"alter table intermediate.int_stage_flows_weekly drop column {column}")
            conn.execute("update intermediate.int_stage_flows_weekly set customers = customers + 1000")
            conn.commit()
        run_dbt(["build", *selection], vars_=changed)
        # (the re-added columns come last: compare in the stored order)
        columns = list(after_change["int_stage_flows_weekly"].columns)
        upgraded = (
            _stage_history("int_stage_flows_weekly")[columns].sort_values(columns).reset_index(drop=True)
        )
        pd.testing.assert_frame_equal(
            upgraded,
            after_change["int_stage_flows_weekly"],
            obj=f"flows upgraded from a table without {dropped}",
        )


def _change_order_behind_the_loader(order_id: str, **values: object) -> int:
    """Set columns of one stored order as a new load batch (committed at once, from a
    connection of its own, as a daily ingest running beside the weekly one would); return
    the batch id."""
    assignments = ", ".join(f"{column} = %s" for column in values)
    with warehouse.connect() as conn:
        row = conn.execute(
            f"""update raw.orders set {assignments},
                       _batch_id = (select max(_batch_id) + 1 from raw.orders)
                where order_id = %s returning _batch_id""",
            (*values.values(), order_id),
        ).fetchone()
        conn.commit()
    assert row is not None
    return int(row[0])


def _refund_behind_the_loader(order_id: str) -> int:
    return _change_order_behind_the_loader(
        order_id, status="refunded", updated_at=datetime(2026, 11, 20, 9, tzinfo=UTC)
    )


def _dbt_in_this_process(args: list[str], vars_: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """dbt run in the test's own process (as Cosmos runs it in a task), so a test can act
    between two of its statements."""
    from dbt.cli.main import dbtRunner

    from retention_pipeline.warehouse import address

    for key, value in address().dbt_env().items():
        monkeypatch.setenv(key, value)
    result = dbtRunner().invoke(dbt_cli_args(args, vars_=vars_))
    assert result.success, result.exception


def test_orders_loaded_while_the_weekly_build_runs_are_picked_up_by_the_next_build(
    warehouse_db: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daily ingest may commit while the weekly dbt build runs: between two models (the
    stage history reads order steps built before it), or inside one model (between the
    order steps' pre-hook, which finds the changed customers, and its insert). Either way
    the build must not record as seen a batch it did not compute from, or the next build
    skips those changes for good. Each race is staged exactly, with old orders refunded
    (they change stored period ends, which a normal week does not recompute)."""
    from dbt.adapters.sql.connections import SQLConnectionManager

    landing = tmp_path / "landing"
    sample_data.generate(
        landing, end=AS_OF.date(), customers=300, seed=13, daily_from=EARLIER_AS_OF.date(), bad_rows=False
    )
    _load(landing, EARLIER_AS_OF)
    models = [
        "int_customer_order_steps",
        *(f"int_customer_stage_history_{grain}" for grain in ("weekly", "monthly")),
        *(
            f"{model}_{grain}"
            for model in ("int_stage_flows", "int_revenue_concentration")
            for grain in ("weekly", "monthly")
        ),
    ]
    as_of = {"as_of": AS_OF.isoformat()}
    run_dbt(
        [
            "build",
            "--select",
            *(f"+{model}" for model in models),
            "--exclude",
            "test_type:unit",
            "test_type:data",
        ],
        vars_=as_of,
    )

    # four customers with several orders; one old order of each gets refunded
    old_orders = _read(
        f"""select distinct on (customer_id) customer_id, order_id from raw.orders o
            where status = 'completed' and ordered_at < timestamptz '{AS_OF.isoformat()}' - interval '60 days'
              and (select count(*) from raw.orders mine
                   where mine.customer_id = o.customer_id and mine.status = 'completed') >= 3
            order by customer_id, ordered_at desc limit 4"""
    )["order_id"].tolist()
    assert len(old_orders) == 4

    def seen(model: str) -> int:
        return int(_read(f"select max(loaded_through) as b from intermediate.{model}")["b"].iloc[0])

    # between two models: the steps see the first refund, the histories run after the second
    first = _refund_behind_the_loader(old_orders[0])
    run_dbt(["run", "--select", "int_customer_order_steps"], vars_=as_of)
    second = _refund_behind_the_loader(old_orders[1])
    run_dbt(["run", "--select", *models[1:]], vars_=as_of)
    assert seen("int_customer_order_steps") == first
    for model in models[1:]:
        assert seen(model) < second, f"{model} claims batch {second}, computed from steps that predate it"

    # inside one model: the fourth refund commits right after the steps' pre-hook deleted
    # the customers changed by the third
    third = _refund_behind_the_loader(old_orders[2])
    fourth: list[int] = []
    add_query = SQLConnectionManager.add_query

    def add_query_then_load(self: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
        result = add_query(self, sql, *args, **kwargs)
        if not fourth and "delete from" in sql and "int_customer_order_steps" in sql:
            fourth.append(_refund_behind_the_loader(old_orders[3]))
        return result

    monkeypatch.setattr(SQLConnectionManager, "add_query", add_query_then_load)
    _dbt_in_this_process(["run", "--select", "int_customer_order_steps"], as_of, monkeypatch)
    monkeypatch.setattr(SQLConnectionManager, "add_query", add_query)
    assert fourth, "the steps' pre-hook did not run"
    assert seen("int_customer_order_steps") == third

    # the next normal build catches up on everything, and equals a rebuild from scratch
    run_dbt(["run", "--select", *models], vars_=as_of)
    assert seen("int_customer_order_steps") == fourth[0]
    steps = _read("select order_id from intermediate.int_customer_order_steps")
    assert not set(old_orders) & set(steps["order_id"]), "a refunded order still counts"
    incremental = {model: _stage_history(model) for model in models}
    run_dbt(["run", "--full-refresh", "--select", *models], vars_=as_of)
    for model in models:
        assert len(incremental[model]) > 0, f"{model} is empty: nothing to compare"
        pd.testing.assert_frame_equal(_stage_history(model), incremental[model], obj=model)


def test_the_monthly_history_stores_complete_months_and_takes_the_running_one_from_the_weekly(
    warehouse_db: object, tmp_path: Path
) -> None:
    """The month end at as_of (the running month) is the week end at as_of: the monthly
    history stores complete months only, and its readers take the running month from the
    weekly history of the same run. A week that writes no monthly row still records what
    the history saw, so a late change the next week is redone for the changed customer at
    the stored month ends, not for everyone. Either way the history equals one computed
    from scratch."""
    landing = tmp_path / "landing"
    sample_data.generate(
        landing, end=AS_OF.date(), customers=300, seed=17, daily_from=EARLIER_AS_OF.date(), bad_rows=False
    )
    _load(landing, EARLIER_AS_OF)
    as_of = {"as_of": AS_OF.isoformat()}
    weekly, monthly = (f"int_customer_stage_history_{grain}" for grain in ("weekly", "monthly"))
    staged = "int_customers_staged_monthly"
    run_dbt(["run", "--select", f"+{weekly}", f"+{staged}"], vars_=as_of)
    columns = ["customer_id", "churn_stage", "orders_count", "net_revenue", "recency_days", "gap_ratio"]

    def running_month() -> pd.DataFrame:
        table = _read(f"select {', '.join(columns)} from intermediate.{staged} where month_index = 0")
        return table.sort_values("customer_id").reset_index(drop=True)

    def week_end_at_as_of() -> pd.DataFrame:
        table = _read(
            f"""select {", ".join(columns)} from intermediate.{weekly}
                where week_end_at = timestamptz '{AS_OF.isoformat()}'"""
        )
        return table.sort_values("customer_id").reset_index(drop=True)

    def analyzed() -> int:
        return int(
            _read(
                f"select analyze_count from pg_stat_user_tables where relid = 'intermediate.{monthly}'::regclass"
            ).iloc[0]["analyze_count"]
        )

    def seen() -> int:
        return int(
            _read(f"select loaded_through from intermediate.{monthly}__seen").iloc[0]["loaded_through"]
        )

    def steps_seen() -> int:
        return int(
            _read("select max(loaded_through) as n from intermediate.int_customer_order_steps").iloc[0]["n"]
        )

    assert analyzed() == 1, "a first build is analyzed at once (its readers run next)"
    ends = _read(f"select month_end_at, count(*) as n from intermediate.{monthly} group by 1 order by 1")
    assert len(ends) >= 12 and (ends["month_end_at"] < AS_OF).all(), "complete months only"
    assert len(running_month()) > 100
    pd.testing.assert_frame_equal(running_month(), week_end_at_as_of())
    assert (
        _read(
            f"select month_index from intermediate.{staged} where month_end_at = timestamptz '{AS_OF.isoformat()}' limit 1"
        ).iloc[0]["month_index"]
        == 0
    )

    # a customer whose only completed order is refunded leaves the running month with the
    # weekly history of the same run
    lone = _read(
        """select customer_id, min(order_id) as order_id from raw.orders
           where status = 'completed' group by 1 having count(*) = 1 order by 1 limit 1"""
    ).iloc[0]
    _refund_behind_the_loader(lone["order_id"])
    run_dbt(["run", "--select", "int_customer_order_steps", weekly, monthly, staged], vars_=as_of)
    assert lone["customer_id"] not in set(running_month()["customer_id"])
    pd.testing.assert_frame_equal(running_month(), week_end_at_as_of())
    assert seen() == steps_seen()

    # a new order inside the running month changes no complete month: the monthly history
    # writes nothing, and records that it has seen the batch all the same
    buyer = week_end_at_as_of().iloc[0]
    _order_behind_the_loader([("o-month-1", buyer["customer_id"], (AS_OF - timedelta(days=2)).isoformat())])
    before = _stage_history(monthly)
    analyzes = analyzed()
    written_before = int(_read(f"select max(loaded_through) as n from intermediate.{monthly}").iloc[0]["n"])
    run_dbt(["run", "--select", "int_customer_order_steps", weekly, monthly, staged], vars_=as_of)
    pd.testing.assert_frame_equal(_stage_history(monthly), before)
    assert (
        int(_read(f"select max(loaded_through) as n from intermediate.{monthly}").iloc[0]["n"])
        == written_before
    )
    assert seen() == steps_seen() > written_before
    assert analyzed() == analyzes, "nothing written, statistics still true: not analyzed again"
    bought = running_month().set_index("customer_id").loc[buyer["customer_id"]]
    assert bought["orders_count"] == buyer["orders_count"] + 1

    # the week after, a late refund of an order placed months ago: at the complete month
    # ends after it only that customer is recomputed (the redo log starts where the history
    # left off), and the result equals a rebuild from scratch
    late = _read(
        f"""select o.order_id, o.customer_id from raw.orders o
            where o.status = 'completed' and o.ordered_at < timestamptz '{AS_OF.isoformat()}' - interval '150 days'
              -- not one of their first two orders: the population's first-gap median stays
              and (select count(*) from raw.orders mine
                   where mine.customer_id = o.customer_id and mine.status = 'completed'
                     and mine.ordered_at < o.ordered_at) >= 2
            order by o.ordered_at desc, o.order_id limit 1"""
    ).iloc[0]
    batch = _refund_behind_the_loader(late["order_id"])
    run_dbt(["run", "--select", "int_customer_order_steps", weekly, monthly, staged], vars_=as_of)
    assert analyzed() > analyzes, "rows rewritten: analyzed"
    redone = _read(
        f"select month_end_at, customer_id from intermediate.{monthly} where loaded_through = {batch}"
    )
    counts = ends.set_index("month_end_at")["n"]
    assert redone["month_end_at"].nunique() >= 4, "the refund reaches several complete months"
    for month_end, customers in redone.groupby("month_end_at")["customer_id"]:
        assert late["customer_id"] in set(customers), month_end
        assert len(customers) < counts[month_end] / 4, f"{month_end} recomputed whole"
    incremental = _stage_history(monthly)
    run_dbt(["run", "--full-refresh", "--select", monthly], vars_=as_of)
    pd.testing.assert_frame_equal(_stage_history(monthly), incremental)
    assert seen() == steps_seen()


def _order_behind_the_loader(rows: list[tuple[str, str, str]]) -> None:
    """New completed orders (order id, customer id, ordered_at) as one new load batch."""
    with warehouse.connect() as conn:
        batch = conn.execute("select max(_batch_id) + 1 from raw.orders").fetchone()
        assert batch is not None
        for order_id, customer_id, ordered_at in rows:
            conn.execute(
                """insert into raw.orders (order_id, customer_id, ordered_at, status, amount, currency,
                                           updated_at, _batch_id, _loaded_at)
                   values (%s, %s, %s, 'completed', 25, 'EUR', timestamptz '2026-11-20 09:00+00', %s, now())""",
                (order_id, customer_id, ordered_at, batch[0]),
            )
        conn.commit()


def test_order_steps_redo_only_the_tail_a_change_touches_and_equal_a_rebuild(
    warehouse_db: object, tmp_path: Path
) -> None:
    """A customer's steps before their first changed order depend on nothing later, so a
    run keeps them and redoes the rest, from the step before (its next order time moves).
    The awkward cases: an order at the same instant as a stored one (taken in id order),
    one later on the same day (no new gap: its rhythm comes from the day's first order,
    which stays stored), an order moved later, past the customer's other orders, and a
    change to one of two orders at a customer's first instant."""
    landing = tmp_path / "landing"
    sample_data.generate(landing, end=AS_OF.date(), customers=200, seed=17, bad_rows=False)
    _load(landing, AS_OF)
    steps_only = ["run", "--select", "+int_customer_order_steps"]
    run_dbt(steps_only, vars_={"as_of": AS_OF.isoformat()})

    def steps() -> pd.DataFrame:
        return _read("select * from intermediate.int_customer_order_steps")

    def equals_a_rebuild() -> None:
        incremental = _stage_history("int_customer_order_steps")
        run_dbt([*steps_only, "--full-refresh"], vars_={"as_of": AS_OF.isoformat()})
        pd.testing.assert_frame_equal(_stage_history("int_customer_order_steps"), incremental)

    # customers with at least three steps, their last order not near midnight (UTC)
    last = _read(
        """select distinct on (customer_id) customer_id, order_id, ordered_at
           from intermediate.int_customer_order_steps s
           where (select count(*) from intermediate.int_customer_order_steps mine
                  where mine.customer_id = s.customer_id) >= 3
             and ordered_at::time between '01:00' and '22:00'
           order by customer_id, ordered_at desc, order_id desc limit 4"""
    )
    assert len(last) == 4
    (same_instant, same_day, twice_same_day, moved) = last.itertuples(index=False)
    before = steps()
    _order_behind_the_loader(
        [
            # sorts before the stored order at that instant (ids compare bytewise)
            ("O0", same_instant.customer_id, same_instant.ordered_at.isoformat()),
            ("X1", same_day.customer_id, (same_day.ordered_at + timedelta(seconds=1)).isoformat()),
            (
                "X2",
                twice_same_day.customer_id,
                (twice_same_day.ordered_at + timedelta(seconds=1)).isoformat(),
            ),
        ]
    )
    # the customer's second order moves to an hour after their last one
    second_step = before[before["customer_id"] == moved.customer_id].sort_values("ordered_at").iloc[1]
    _change_order_behind_the_loader(second_step["order_id"], ordered_at=moved.ordered_at + timedelta(hours=1))
    run_dbt(steps_only, vars_={"as_of": AS_OF.isoformat()})

    after = steps()
    touched = {same_instant.customer_id, same_day.customer_id, twice_same_day.customer_id, moved.customer_id}
    old_batch = before["loaded_through"].max()
    # untouched customers' steps are the stored rows, untouched
    key = ["customer_id", "order_id"]
    kept = before[~before["customer_id"].isin(touched)].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        after[~after["customer_id"].isin(touched)].sort_values(key).reset_index(drop=True), kept
    )
    # a touched customer keeps the steps before the one preceding the change
    for customer in (same_day.customer_id, twice_same_day.customer_id):
        mine = after[after["customer_id"] == customer].sort_values(["ordered_at", "order_id"])
        assert (mine["loaded_through"].iloc[:-2] == old_batch).all() and len(mine) >= 4, customer
        assert (mine["loaded_through"].iloc[-2:] > old_batch).all(), customer
    equals_a_rebuild()

    # the same day once more: now the day's first order (the gap) stays stored and the two
    # later ones are redone from it
    _order_behind_the_loader(
        [("X3", twice_same_day.customer_id, (twice_same_day.ordered_at + timedelta(seconds=2)).isoformat())]
    )
    run_dbt(steps_only, vars_={"as_of": AS_OF.isoformat()})
    mine = steps()
    mine = mine[mine["customer_id"] == twice_same_day.customer_id].sort_values(["ordered_at", "order_id"])
    assert mine["order_id"].tolist()[-3:] == [twice_same_day.order_id, "X2", "X3"]
    assert mine["loaded_through"].iloc[-3] < mine["loaded_through"].iloc[-1]
    equals_a_rebuild()

    # a customer whose first two orders share an instant: a change to the second redoes
    # the customer from that instant, with no step kept before it (the first of the tied
    # steps, in id order, carries one order; the kept totals are none, not that one)
    first_at = AS_OF - timedelta(days=40, hours=3)
    _order_behind_the_loader(
        [
            ("T1", "C_TIED", first_at.isoformat()),
            ("T2", "C_TIED", first_at.isoformat()),
            ("T3", "C_TIED", (first_at + timedelta(days=9)).isoformat()),
        ]
    )
    run_dbt(steps_only, vars_={"as_of": AS_OF.isoformat()})
    _change_order_behind_the_loader("T2", amount=40)
    run_dbt(steps_only, vars_={"as_of": AS_OF.isoformat()})
    mine = steps()
    mine = mine[mine["customer_id"] == "C_TIED"].sort_values(["ordered_at", "order_id"])
    assert mine["orders_count"].tolist() == [1, 2, 3]
    assert mine["net_revenue"].tolist() == [25, 65, 90]
    equals_a_rebuild()
