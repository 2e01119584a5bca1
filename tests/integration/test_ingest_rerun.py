"""Backfilling a range of intervals twice: raw is identical and every batch reconciles.

Orders come from a shop database (SQL source, with overlap), customers from dated files,
each through the real task bodies: land, the GX gate, publish.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from retention_pipeline import ingest_tasks, warehouse

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 16, tzinfo=UTC)
DAYS = [START + timedelta(days=i) for i in range(4)]
CUSTOMER_HEADER = (
    "customer_id,email,phone,full_name,created_at,manager_id,do_not_call,marketing_opt_out,updated_at"
)
TABLES = ["raw.orders", "raw.customers", "quarantine.orders", "quarantine.customers"]


def _checksum(table: str) -> tuple[int, str]:
    with warehouse.connect() as conn:
        key = "order_id" if "orders" in table else "customer_id"
        ignore = "_quarantined_at, _batch_id, _source_file" if table.startswith("quarantine") else ""
        row = conn.execute(
            f"""select count(*), md5(coalesce(string_agg(t::text, '|' order by t::text), ''))
                from (select * from {table}) t"""
            if not ignore
            else f"""select count(*), md5(coalesce(string_agg(t::text, '|' order by t::text), ''))
                from (select {key}, _reason, _line_number from {table}) t"""
        ).fetchone()
        assert row is not None
        return int(row[0]), str(row[1])


def _run_range() -> None:
    for start, end in itertools.pairwise(DAYS):
        for entity in ("customers", "orders"):
            batch_id = ingest_tasks.land_entity(entity, start, end)
            ingest_tasks.publish(ingest_tasks.validate_batch(batch_id, f"backfill {start:%F}"))


def test_backfilling_a_range_twice_leaves_raw_identical(warehouse_db, server_address, tmp_path, monkeypatch):
    name = f"rt_shop_{uuid.uuid4().hex[:10]}"
    admin = {**server_address.libpq_kwargs(), "dbname": "postgres"}
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    shop = {**server_address.libpq_kwargs(), "dbname": name}
    try:
        with psycopg.connect(**shop) as conn:  # type: ignore[arg-type]
            conn.execute(
                "create table orders (order_id text, customer_id text, ordered_at timestamptz, status text, "
                "amount numeric(14,2), currency text, updated_at timestamptz)"
            )
            with conn.cursor().copy("copy orders from stdin") as copy:
                for i in range(3000):
                    ordered = START + timedelta(seconds=30 * i)  # spread over ~25 hours
                    updated = ordered + timedelta(hours=(i % 5) * 10)  # some change a day or two later
                    status = "refunded" if i % 5 == 4 else "completed"
                    amount = "-1" if i % 997 == 0 else f"{i % 90 + 10}.50"  # a few bad rows
                    copy.write_row((f"O{i}", f"C{i % 40}", ordered, status, amount, "EUR", updated))
        address = warehouse.parse_url(warehouse.address().sqlalchemy_url())
        monkeypatch.setenv(
            "AIRFLOW_CONN_SHOP",
            f"postgres://{address.user}@{'localhost' if address.is_socket else address.host}:{address.port}/{name}"
            + (f"?host={address.host}" if address.is_socket else ""),
        )
        sources = tmp_path / "sources.yml"
        sources.write_text(
            "orders: {kind: sql, conn_id: shop, table: orders, overlap_minutes: 60, chunk_rows: 500}\n"
        )
        monkeypatch.setenv("RETENTION_SOURCES_FILE", str(sources))
        landing = tmp_path / "landing" / "customers"
        landing.mkdir(parents=True)
        for day in range(3):
            lines = [CUSTOMER_HEADER]
            for c in range(40):
                ts = (START + timedelta(days=day, hours=1)).isoformat()
                lines.append(
                    f"C{c},c{c}@example.com,+1,Name {c},{START.isoformat()},M1,{'true' if c % 7 == day else 'false'},false,{ts}"
                )
            if day == 1:
                lines.append(f"CX,x@example.com,+1,X,{START.isoformat()},M1,maybe,false,{START.isoformat()}")
            (landing / f"customers_{(START + timedelta(days=day)).date()}.csv").write_text(
                "\n".join(lines) + "\n"
            )

        _run_range()
        first = {t: _checksum(t) for t in TABLES}
        assert first["raw.orders"][0] == 3000 - 4  # i % 997 == 0: 4 rows with a negative amount
        assert first["quarantine.orders"][0] == 4
        assert first["raw.customers"][0] == 40 and first["quarantine.customers"][0] == 1
        _run_range()
        assert {t: _checksum(t) for t in TABLES} == first

        with warehouse.connect() as conn:
            batches = conn.execute(
                "select entity, status, rows_read, rows_loaded, rows_quarantined from ops.load_batches order by batch_id"
            ).fetchall()
            watermark = conn.execute("select watermark from ops.source_watermarks").fetchall()
        assert {(e, s) for e, s, *_ in batches} == {("orders", "published"), ("customers", "published")}
        for _, _, read, loaded, quarantined in batches:
            assert read == loaded + quarantined
        # files are loaded once; the SQL source re-reads its windows (and changes nothing)
        assert sum(1 for e, *_ in batches if e == "customers") == 3
        assert sum(1 for e, *_ in batches if e == "orders") == 6
        assert watermark == [(DAYS[-1],)]
    finally:
        with psycopg.connect(**admin, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
