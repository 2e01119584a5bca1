"""Incremental extracts from real shop databases: PostgreSQL and the MariaDB service.

The source database is created per test; the warehouse is the test warehouse. The
Airflow connection is read the way a task reads it, from ``AIRFLOW_CONN_<ID>``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from retention_pipeline import ingest_tasks, loading, warehouse

pytestmark = pytest.mark.integration

D1 = datetime(2026, 11, 16, tzinfo=UTC)
D2 = D1 + timedelta(days=1)
D3 = D2 + timedelta(days=1)
MARIADB_URL = os.environ.get("RETENTION_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def _rows(query: str, params: tuple = ()) -> list[tuple]:
    with warehouse.connect() as conn:
        return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


@pytest.fixture
def shop_pg(server_address) -> Iterator[str]:
    """A shop database on the test PostgreSQL server; yields its Airflow-style URI."""
    name = f"rt_shop_{uuid.uuid4().hex[:10]}"
    admin = {**server_address.libpq_kwargs(), "dbname": "postgres"}
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    address = server_address.__class__(**{**server_address.__dict__, "database": name})
    with psycopg.connect(**address.libpq_kwargs()) as conn:
        conn.execute(
            """create table shop_orders (
                id text primary key, customer text, ordered_at timestamptz, status text,
                total numeric(14,2), currency text, updated_at timestamptz, coupon text)"""
        )
    yield address.sqlalchemy_url("psycopg")
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def _pg_exec(url: str, statement: str, params: tuple = ()) -> None:
    from retention_pipeline.warehouse import parse_url

    with psycopg.connect(**parse_url(url).libpq_kwargs()) as conn:
        conn.execute(statement, params)  # type: ignore[arg-type]


def _sources_file(tmp_path, monkeypatch, text: str) -> None:
    path = tmp_path / "sources.yml"
    path.write_text(text)
    monkeypatch.setenv("RETENTION_SOURCES_FILE", str(path))


def _run(entity: str, start: datetime, end: datetime) -> int | None:
    batch_id = ingest_tasks.land_entity(entity, start, end)
    ingest_tasks.publish(batch_id)
    return batch_id


def test_postgres_orders_incremental_with_overlap_mapping_and_chunks(
    warehouse_db, shop_pg, tmp_path, monkeypatch
):
    from sqlalchemy.engine import make_url

    u = make_url(shop_pg)
    monkeypatch.setenv(
        "AIRFLOW_CONN_SHOP_PG",
        f"postgres://{u.username}@{u.host or 'localhost'}:{u.port or 5432}/{u.database}"
        + (f"?host={u.query['host']}" if "host" in u.query else ""),
    )
    _sources_file(
        tmp_path,
        monkeypatch,
        """
orders:
  kind: sql
  conn_id: shop_pg
  table: shop_orders
  overlap_minutes: 30
  chunk_rows: 2
  mapping: {id: order_id, customer: customer_id, total: amount}
""",
    )
    ins = "insert into shop_orders values (%s, 'C1', %s, %s, %s, 'EUR', %s, null)"
    for i in range(5):
        ts = D1 + timedelta(hours=i)
        _pg_exec(shop_pg, ins, (f"O{i}", ts, "completed", 10 + i, ts))
    _pg_exec(
        shop_pg, ins, ("O9", D2 + timedelta(hours=1), "completed", 1, D2 + timedelta(hours=1))
    )  # next day

    batch_id = ingest_tasks.land_entity("orders", D1, D2)
    assert batch_id is not None
    # landed but not published: the watermark has not moved
    assert _rows("select count(*) from ops.source_watermarks") == [(0,)]
    ingest_tasks.publish(batch_id)
    assert _rows("select watermark from ops.source_watermarks where entity = 'orders'") == [(D2,)]
    assert _rows("select count(*), sum(amount) from raw.orders") == [(5, 60)]
    assert _rows("select rows_read, rows_loaded, rows_quarantined, source from ops.load_batches") == [
        (5, 5, 0, "sql:shop_pg:shop_orders")
    ]
    (name,) = _rows("select file_name from ops.loaded_files")[0]
    assert name == f"sql:shop_orders:[-infinity, {D2.isoformat()})"
    # the coupon column the contract does not know rides along in _extra, like a file's
    assert _rows("select extra_columns from ops.load_batches") == [(["coupon"],)]

    # a late commit: written after the watermark moved, stamped 10 minutes before it
    late = D2 - timedelta(minutes=10)
    _pg_exec(shop_pg, ins, ("O7", late, "completed", 7, late))
    _pg_exec(
        shop_pg,
        "update shop_orders set status = 'refunded', updated_at = %s where id = 'O0'",
        (D2 + timedelta(hours=2),),
    )
    _run("orders", D2, D3)
    assert _rows(
        "select order_id, status from raw.orders where order_id in ('O0', 'O7', 'O9') order by 1"
    ) == [
        ("O0", "refunded"),
        ("O7", "completed"),
        ("O9", "completed"),
    ]
    assert _rows("select file_name from ops.loaded_files order by batch_id")[1] == (
        f"sql:shop_orders:[{(D2 - timedelta(minutes=30)).isoformat()}, {D3.isoformat()})",
    )
    assert _rows("select watermark from ops.source_watermarks") == [(D3,)]
    for read, loaded, quarantined in _rows(
        "select rows_read, rows_loaded, rows_quarantined from ops.load_batches"
    ):
        assert read == loaded + quarantined


def test_a_batch_that_is_not_published_leaves_the_watermark_and_is_read_again(
    warehouse_db, shop_pg, tmp_path, monkeypatch
):
    from retention_pipeline.sources.config import load_sources
    from retention_pipeline.sources.land import land_from_source

    path = tmp_path / "sources.yml"
    path.write_text(
        "orders: {kind: sql, conn_id: unused, table: shop_orders, mapping: {id: order_id, customer: customer_id, total: amount}}\n"
    )
    spec = load_sources(path)["orders"]
    ts = D1 + timedelta(hours=3)
    _pg_exec(
        shop_pg, "insert into shop_orders values ('O1', 'C1', %s, 'completed', 5, 'EUR', %s, null)", (ts, ts)
    )
    with warehouse.connect() as conn:
        first = land_from_source(conn, spec, tmp_path, D1, D2, sql_url=shop_pg)
        assert first is not None
        loading.reject_batch(conn, first.batch_id, "gate failed (test)")
        second = land_from_source(conn, spec, tmp_path, D1, D2, sql_url=shop_pg)
        assert second is not None and second.rows_read == 1
        loading.publish_batch(conn, second.batch_id)
        # an empty window makes no batch
        assert land_from_source(conn, spec, tmp_path, D2, D3, sql_url=shop_pg) is None
    assert _rows("select order_id from raw.orders") == [("O1",)]
    assert _rows("select watermark, batch_id from ops.source_watermarks") == [(D2, second.batch_id)]


@pytest.fixture
def shop_mariadb() -> Iterator[tuple[str, str]]:
    """A customers table in the MariaDB service's ``test`` database."""
    import sqlalchemy

    table = f"rt_customers_{uuid.uuid4().hex[:8]}"
    engine = sqlalchemy.create_engine(MARIADB_URL)
    with engine.begin() as conn:
        conn.execute(
            sqlalchemy.text(
                f"""create table {table} (
                    customer_id varchar(20) primary key, email varchar(100), phone varchar(30),
                    name varchar(100), created_at datetime, manager_id varchar(10),
                    do_not_call tinyint(1), marketing_opt_out boolean, updated_at datetime(6))"""
            )
        )
    yield MARIADB_URL, table
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f"drop table if exists {table}"))
    engine.dispose()


def test_mariadb_customers_stream_through_the_same_path(warehouse_db, shop_mariadb, tmp_path, monkeypatch):
    import sqlalchemy

    url, table = shop_mariadb
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_MARIADB", url.replace("mysql+pymysql://", "mysql://"))
    _sources_file(
        tmp_path,
        monkeypatch,
        f"""
customers:
  kind: sql
  conn_id: shop_mariadb
  query: "select customer_id, email, phone, name, created_at, manager_id, do_not_call = 1 as do_not_call, marketing_opt_out = 1 as marketing_opt_out, updated_at from {table}"
  overlap_minutes: 15
  chunk_rows: 1000
  mapping: {{name: full_name}}
""",
    )
    engine = sqlalchemy.create_engine(url)
    rows = [
        {
            "id": f"C{i:06d}",
            "email": f"c{i}@example.com",
            "ts": datetime(2026, 11, 16, 8, 0) + timedelta(seconds=i),
            "dnc": i % 2,
        }
        for i in range(2500)
    ]
    rows.append({"id": "CBAD", "email": "bad@example.com", "ts": datetime(2026, 11, 16, 9, 0), "dnc": None})
    with engine.begin() as conn:
        conn.execute(
            sqlalchemy.text(
                f"insert into {table} values (:id, :email, '+100', 'Ann Example', :ts, 'M01', :dnc, 0, :ts)"
            ),
            rows,
        )
    engine.dispose()
    batch_id = _run("customers", D1, D2)
    assert batch_id is not None
    assert _rows("select count(*), count(*) filter (where do_not_call) from raw.customers") == [(2500, 1250)]
    # MariaDB DATETIME has no zone: read as UTC
    assert _rows("select created_at from raw.customers where customer_id = 'C000000'") == [
        (datetime(2026, 11, 16, 8, 0, tzinfo=UTC),)
    ]
    assert _rows("select customer_id, _reason from quarantine.customers") == [("CBAD", "missing do_not_call")]
    assert _rows("select rows_read, rows_loaded, rows_quarantined from ops.load_batches") == [(2501, 2500, 1)]
    assert _rows("select watermark from ops.source_watermarks") == [(D2,)]
    # the next day: nothing changed, no batch
    assert ingest_tasks.land_entity("customers", D2, D3) is None
