"""rpt_campaign_results / rpt_campaign_reasons built by dbt on a real PostgreSQL.

A small campaign whose every number is worked out by hand below: who was pushed,
reached, agreed, converted within the attribution window (from the call, or from the
hand-over when never called), the holdout, the uplift with its 95% interval, average
checks and the retention cost. Built empty first (no outcomes table, no ledger rows),
and again at an earlier as_of to show the marts are keyed to it.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from retention_pipeline import warehouse
from retention_pipeline.dbt_config import run_dbt

pytestmark = pytest.mark.integration

MODELS = ["rpt_campaign_results", "rpt_campaign_reasons"]
START = "2026-11-16 00:00+00"  # 2026-W46's end: the hand-over

DATA = f"""
insert into ops.outreach_assignments
select '2026-W46', c, 0, arm, null, variant, null, 'red', timestamptz '{START}', '{{}}'::jsonb, now()
from (values
    ('T1', 'treatment', 'A'), ('T2', 'treatment', 'A'), ('T3', 'treatment', 'A'), ('T4', 'treatment', 'A'),
    ('T5', 'treatment', 'A'), ('T6', 'treatment', 'B'), ('T7', 'treatment', 'B'), ('T8', 'treatment', 'B'),
    ('T9', 'treatment', 'B'), ('T10', 'treatment', 'B'), ('E1', 'excluded', null)
) as a(c, arm, variant)
union all
select '2026-W46', 'H' || g, 0, 'holdout', null, case when g % 2 = 0 then 'A' else 'B' end, null, 'red', timestamptz '{START}', '{{}}'::jsonb, now()
from generate_series(1, 10) g;

insert into ops.outreach_pushes (iso_week, sink, customer_id, status, started_at)
select '2026-W46', s, c, case when c = 'T10' then 'failed' else 'pushed' end, now()
from unnest(array['T1','T2','T3','T4','T5','T6','T7','T8','T9','T10']) c, unnest(array['csv', 'hubspot']) s;

insert into raw.call_outcomes (attempt_id, customer_id, campaign, called_at, reached, agreed_to_return, reason,
    agent_id, updated_at, _batch_id, _loaded_at) values
    ('a1', 'T1', '2026-W46', '2026-11-17 10:00+00', true, true, 'Price', 'G', now(), 0, now()),
    ('a2', 'T2', '2026-W46', '2026-11-17 11:00+00', true, true, 'delivery', 'G', now(), 0, now()),
    ('a3', 'T3', '2026-W46', '2026-11-17 12:00+00', true, false, 'price ', 'G', now(), 0, now()),
    ('a3b', 'T3', '2026-W46', '2026-11-16 12:00+00', false, false, null, 'G', now(), 0, now()),
    ('a6', 'T6', '2026-W46', '2026-11-18 09:00+00', true, false, 'price', 'G', now(), 0, now()),
    ('a8', 'T8', '2026-W46', '2026-11-18 09:00+00', false, false, null, 'G', now(), 0, now());

insert into raw.orders (order_id, customer_id, ordered_at, status, amount, currency, updated_at, _batch_id, _loaded_at)
values
    ('o1', 'T1', '2026-11-18 10:00+00', 'completed', 100, 'EUR', now(), 0, now()),
    ('o2', 'T2', '2026-11-16 12:00+00', 'completed', 70, 'EUR', now(), 0, now()),   -- before T2's call
    ('o4', 'T4', '2026-12-05 10:00+00', 'completed', 90, 'EUR', now(), 0, now()),   -- after the window
    ('o6', 'T6', '2026-11-20 10:00+00', 'completed', 300, 'EUR', now(), 0, now()),
    ('o7', 'T7', '2026-11-25 10:00+00', 'completed', 50, 'EUR', now(), 0, now()),   -- never called
    ('o8', 'T8', '2026-11-19 10:00+00', 'cancelled', 500, 'EUR', now(), 0, now()),
    ('h1', 'H1', '2026-11-19 10:00+00', 'completed', 80, 'EUR', now(), 0, now()),
    ('h2', 'H2', '2026-11-19 10:00+00', 'refunded', 80, 'EUR', now(), 0, now()),
    ('x1', 'X1', '2026-11-20 10:00+00', 'completed', 60, 'EUR', now(), 0, now()),
    ('x2', 'X1', '2026-11-21 10:00+00', 'completed', 40, 'EUR', now(), 0, now()),
    ('x3', 'X2', '2026-12-02 10:00+00', 'completed', 999, 'EUR', now(), 0, now()); -- after the window
"""


def _sql(address: Any, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(**address.libpq_kwargs()) as conn:
        return conn.execute(query).fetchall()


def _results(address: Any) -> dict[str, dict[str, Any]]:
    with psycopg.connect(**address.libpq_kwargs()) as conn:
        cur = conn.execute("select * from marts.rpt_campaign_results order by campaign, variant")
        names = [d.name for d in cur.description or []]
        return {row[1]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def test_campaign_results_by_hand(warehouse_db: Any) -> None:
    # before any campaign and before the call-center source exists: empty, not an error
    with psycopg.connect(**warehouse_db.libpq_kwargs()) as conn:
        conn.execute("drop table raw.call_outcomes")
    as_of = {"as_of": "2026-12-07T00:00:00+00:00"}
    run_dbt(["run", "--select", *[f"+{m}" for m in MODELS], "--quiet"], vars_=as_of)
    run_dbt(["test", "--select", *MODELS, "--quiet"], vars_=as_of)
    assert _sql(warehouse_db, "select count(*) from marts.rpt_campaign_results") == [(0,)]
    assert _sql(warehouse_db, "select count(*) from marts.rpt_campaign_reasons") == [(0,)]
    columns = [
        c
        for (c,) in _sql(
            warehouse_db,
            "select column_name from information_schema.columns where table_schema = 'marts' "
            "and table_name = 'rpt_campaign_results' order by ordinal_position",
        )
    ]
    assert columns == [
        "campaign", "variant", "pushed", "reached", "agreed_to_return", "converted", "conversion_rate",
        "holdout_customers", "holdout_converted", "holdout_conversion_rate", "uplift", "uplift_ci_low",
        "uplift_ci_high", "avg_check_converted", "avg_check_other", "retention_cost",
    ]  # fmt: skip

    warehouse.bootstrap()  # the call-center source arrives
    with psycopg.connect(**warehouse_db.libpq_kwargs()) as conn:
        conn.execute(DATA)
    run_dbt(
        ["build", "--select", "stg_call_center__call_outcomes", *MODELS, "--quiet"],
        vars_={"as_of": "2026-12-07T00:00:00+00:00"},
    )
    got = _results(warehouse_db)
    assert set(got) == {"A", "B"}
    a, b = got["A"], got["B"]
    # A: T1..T5 pushed; T1, T2, T3 reached; T1, T2 agreed; only T1 converted (T2 ordered
    # before its call, T4 after the 14-day window)
    assert (a["pushed"], a["reached"], a["agreed_to_return"], a["converted"]) == (5, 3, 2, 1)
    # B: T10's push failed; T6 converted after its call, T7 (never called) from the hand-over
    assert (b["pushed"], b["reached"], b["agreed_to_return"], b["converted"]) == (4, 1, 0, 2)
    assert a["conversion_rate"] == Decimal("0.2000") and b["conversion_rate"] == Decimal("0.5000")
    for row in (a, b):  # the whole holdout, for each variant
        assert (row["holdout_customers"], row["holdout_converted"]) == (10, 1)
        assert row["holdout_conversion_rate"] == Decimal("0.1000")
        assert row["avg_check_other"] == Decimal("60.00")  # H1 80, X1 60 and 40
    margin = 1.959963984540054 * math.sqrt(0.2 * 0.8 / 5 + 0.1 * 0.9 / 10)
    assert a["uplift"] == Decimal("0.1000")
    assert float(a["uplift_ci_low"]) == pytest.approx(0.1 - margin, abs=1e-4)
    assert float(a["uplift_ci_high"]) == pytest.approx(0.1 + margin, abs=1e-4)
    assert a["avg_check_converted"] == Decimal("100.00") and b["avg_check_converted"] == Decimal("175.00")
    assert a["retention_cost"] == Decimal("10.00") and b["retention_cost"] == Decimal("4.00")  # 2.0 per call

    reasons = set(
        _sql(warehouse_db, "select campaign, variant, reason, customers from marts.rpt_campaign_reasons")
    )
    assert reasons == {
        ("2026-W46", "A", "price", 2),
        ("2026-W46", "A", "delivery", 1),
        ("2026-W46", "B", "price", 1),
    }

    # keyed to as_of: on 2026-11-19 T6 (called on the 18th) has not ordered yet, T7 neither
    run_dbt(["build", "--select", *MODELS, "--quiet"], vars_={"as_of": "2026-11-19T00:00:00+00:00"})
    got = _results(warehouse_db)
    assert (got["A"]["converted"], got["B"]["converted"], got["B"]["reached"]) == (1, 0, 1)
    assert got["A"]["holdout_converted"] == 0  # H1 ordered on the 19th, 10:00
    run_dbt(["build", "--select", *MODELS, "--quiet"], vars_={"as_of": "2026-11-16T00:00:00+00:00"})
    assert _sql(warehouse_db, "select count(*) from marts.rpt_campaign_results") == [(0,)]
