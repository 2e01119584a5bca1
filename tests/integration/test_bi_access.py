"""The BI role reads the marts through masked views and nothing else, proven by logging in as it."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import errors, sql

from retention_pipeline import bi_access, warehouse

pytestmark = pytest.mark.integration


@pytest.fixture
def bi_role(warehouse_db, monkeypatch):
    role = f"rt_bi_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("RETENTION_BI_ROLE", role)
    monkeypatch.setenv("RETENTION_BI_PASSWORD", "bi-test-password")
    yield role
    admin = {**warehouse_db.libpq_kwargs()}
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(role)))


def _mart_fixture() -> None:
    with warehouse.connect() as conn:
        conn.execute("create schema if not exists marts")
        conn.execute(
            """create table marts.dim_customers as
               select 'C1'::text as customer_id, 'ann@example.com'::text as email,
                      '+49 30 1234567'::text as phone, 'Ann Smith'::text as full_name, 'red'::text as intervention_level"""
        )
        conn.execute(
            "create table marts.rpt_weekly_kpis as select '2026-W47'::text as iso_week, 812 as active_customers"
        )
        conn.execute(
            """insert into raw.customers (customer_id, email, phone, full_name, created_at, manager_id,
               do_not_call, marketing_opt_out, updated_at, _batch_id, _loaded_at)
               values ('C1', 'ann@example.com', '+49 30 1234567', 'Ann Smith', now(), 'M01', false, false, now(), 1, now())"""
        )
        conn.commit()


def _as_bi(address, role: str):
    return psycopg.connect(
        host=address.host,
        port=address.port,
        dbname=address.database,
        user=role,
        password="bi-test-password",
        autocommit=True,
    )


def test_bi_reads_marts_with_contacts_masked_and_nothing_private(warehouse_db, bi_role):
    _mart_fixture()
    views = bi_access.refresh()
    assert set(views) == {"bi.dim_customers", "bi.rpt_weekly_kpis"}
    with _as_bi(warehouse_db, bi_role) as conn:
        row = conn.execute(
            "select customer_id, email, phone, full_name, intervention_level from bi.dim_customers"
        ).fetchone()
        assert row == ("C1", "a***@example.com", "***67", "***", "red")
        assert conn.execute("select active_customers from bi.rpt_weekly_kpis").fetchone() == (812,)
        for private in ("raw.customers", "marts.dim_customers", "ops.load_batches", "quarantine.orders"):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(f"select * from {private} limit 1")


def test_access_survives_the_marts_being_rebuilt(warehouse_db, bi_role):
    _mart_fixture()
    bi_access.refresh()
    with warehouse.connect() as conn:  # what a dbt rebuild does: drop (cascade) and recreate
        conn.execute("drop table marts.rpt_weekly_kpis cascade")
        conn.execute(
            "create table marts.rpt_weekly_kpis as select '2026-W48'::text as iso_week, 820 as active_customers"
        )
        conn.commit()
    bi_access.refresh()
    with _as_bi(warehouse_db, bi_role) as conn:
        assert conn.execute("select iso_week, active_customers from bi.rpt_weekly_kpis").fetchone() == (
            "2026-W48",
            820,
        )
