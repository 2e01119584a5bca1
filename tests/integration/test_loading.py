"""Landing files into a real PostgreSQL: quarantine, reconciliation, idempotency."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from retention_pipeline import loading, warehouse

pytestmark = pytest.mark.integration

DAY = datetime(2026, 11, 16, tzinfo=UTC)
NEXT = datetime(2026, 11, 17, tzinfo=UTC)
HEADER = "order_id,customer_id,ordered_at,status,amount,currency,updated_at"


def _write(landing: Path, name: str, lines: list[str], entity: str = "orders") -> Path:
    folder = landing / entity
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _land_and_publish(
    landing: Path, entity: str = "orders", end: datetime = NEXT
) -> loading.LandedBatch | None:
    with warehouse.connect() as conn:
        batch = loading.land_files(conn, entity, landing, DAY, end)
        if batch:
            loading.publish_batch(conn, batch.batch_id)
        return batch


def _rows(query: str) -> list[tuple]:
    with warehouse.connect() as conn:
        return conn.execute(query).fetchall()  # type: ignore[arg-type]


def test_bad_rows_go_to_quarantine_with_reasons_and_the_ledger_reconciles(warehouse_db, tmp_path):
    landing = tmp_path / "landing"
    _write(
        landing,
        "orders_2026-11-16.csv",
        [
            HEADER,
            "O1,C1,2026-11-16T10:00:00+00:00,completed,10.50,EUR,2026-11-16T10:00:00+00:00",
            ",C1,2026-11-16T10:00:00+00:00,completed,10.50,EUR,2026-11-16T10:00:00+00:00",
            "O2,C1,2026-11-16T10:00:00+00:00,completed,abc,EUR,2026-11-16T10:00:00+00:00",
            "O3,C1,2026-11-16T10:00:00+00:00,lost,1,EUR,2026-11-16T10:00:00+00:00",
            "O4,C1,not-a-date,completed,1,EUR,2026-11-16T10:00:00+00:00",
            "O5,C1,2027-01-01T00:00:00+00:00,completed,1,EUR,2026-11-16T10:00:00+00:00",
            "O6,C1,2026-11-16T10:00:00+00:00,completed,-3,EUR,2026-11-16T10:00:00+00:00",
            "O7,C1,2026-11-16T10:00:00+00:00,completed,5,EUR,2026-11-16T10:00:00+00:00",
            "O7,C1,2026-11-16T10:00:00+00:00,completed,6,EUR,2026-11-16T10:00:00+00:00",
        ],
    )
    batch = _land_and_publish(landing)
    assert batch is not None
    reasons = dict(
        _rows(
            "select coalesce(order_id, '<none>'), _reason from quarantine.orders where order_id is distinct from 'O7'"
        )
    )
    assert reasons == {
        "<none>": "missing order_id",
        "O2": "invalid numeric in amount: abc",
        "O3": "unknown status 'lost'",
        "O4": "invalid timestamptz in ordered_at: not-a-date",
        "O5": "ordered_at 2027-01-01T00:00:00+00:00 is in the future of the load interval",
        "O6": "amount -3 out of range [0, infinity]",
    }
    assert _rows("select count(*), min(_reason) from quarantine.orders where order_id = 'O7'") == [
        (2, "duplicate order_id with different content in one batch")
    ]
    # the line numbers point at the file's lines (header = line 1)
    assert _rows("select _line_number from quarantine.orders where order_id = 'O2'") == [(4,)]
    assert _rows("select order_id from raw.orders") == [("O1",)]
    read, loaded, quarantined, status = _rows(
        f"select rows_read, rows_loaded, rows_quarantined, status from ops.load_batches where batch_id = {batch.batch_id}"
    )[0]
    assert (read, loaded, quarantined, status) == (9, 1, 8, "published")
    assert read == loaded + quarantined


def test_rerun_loads_nothing_twice_and_latest_version_wins(warehouse_db, tmp_path):
    landing = tmp_path / "landing"
    _write(
        landing,
        "orders_2026-11-15.csv",
        [HEADER, "O1,C1,2026-11-15T10:00:00+00:00,completed,10,EUR,2026-11-15T10:00:00+00:00"],
    )
    assert _land_and_publish(landing) is not None
    assert _land_and_publish(landing) is None  # same file, same checksum: nothing new
    _write(
        landing,
        "orders_2026-11-16.csv",
        [HEADER, "O1,C1,2026-11-15T10:00:00+00:00,refunded,10,EUR,2026-11-16T09:00:00+00:00"],
    )
    _land_and_publish(landing)
    # an older version arriving late does not overwrite the newer one
    _write(
        landing,
        "orders_late.csv",
        [HEADER, "O1,C1,2026-11-15T10:00:00+00:00,completed,10,EUR,2026-11-15T11:00:00+00:00"],
    )
    _land_and_publish(landing)
    assert _rows("select order_id, status from raw.orders") == [("O1", "refunded")]
    assert _rows("select count(*) from ops.loaded_files") == [(3,)]


def test_missing_required_column_fails_the_batch_and_publishes_nothing(warehouse_db, tmp_path):
    landing = tmp_path / "landing"
    _write(
        landing,
        "orders_a.csv",
        [HEADER, "O1,C1,2026-11-15T10:00:00+00:00,completed,10,EUR,2026-11-15T10:00:00+00:00"],
    )
    _write(
        landing,
        "orders_b.csv",
        [
            "order_id,customer_id,ordered_at,status,currency,updated_at",
            "O2,C1,2026-11-15T10:00:00+00:00,completed,EUR,2026-11-15T10:00:00+00:00",
        ],
    )
    with pytest.raises(loading.BatchRejected, match=r"orders_b.csv lacks required column\(s\) amount"):
        _land_and_publish(landing)
    assert _rows("select count(*) from raw.orders") == [(0,)]
    assert _rows("select status, error like '%amount%' from ops.load_batches") == [("failed", True)]


def test_extra_columns_are_kept_and_reported(warehouse_db, tmp_path):
    landing = tmp_path / "landing"
    _write(
        landing,
        "orders.csv",
        [
            HEADER + ",coupon,channel",
            "O1,C1,2026-11-15T10:00:00+00:00,completed,10,EUR,2026-11-15T10:00:00+00:00,WELCOME,app",
        ],
    )
    batch = _land_and_publish(landing)
    assert batch is not None and batch.extra_columns == ["coupon", "channel"]
    assert _rows("select _extra from raw.orders") == [({"coupon": "WELCOME", "channel": "app"},)]
    assert _rows("select extra_columns from ops.load_batches") == [(["coupon", "channel"],)]


def test_jsonl_and_parquet_files_load_like_csv(warehouse_db, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    landing = tmp_path / "landing"
    folder = landing / "surveys"
    folder.mkdir(parents=True)
    lines = [
        json.dumps(
            {
                "response_id": "S1",
                "customer_id": "C1",
                "submitted_at": "2026-11-15T10:00:00Z",
                "score": 9,
                "comment": 'great, "fast"\tdelivery',
                "channel": "email",
                "manager_id": "M01",
            }
        ),
        "{not json",
        json.dumps(
            {"response_id": "S2", "customer_id": "C1", "submitted_at": "2026-11-15T11:00:00Z", "score": 11}
        ),
    ]
    (folder / "surveys.jsonl").write_text("\n".join(lines) + "\n")
    table = pa.table(
        {
            "response_id": ["S3"],
            "customer_id": ["C2"],
            "submitted_at": ["2026-11-15T12:00:00+00:00"],
            "score": [3],
            "comment": ["slow"],
            "channel": ["sms"],
            "manager_id": ["M02"],
        }
    )
    pq.write_table(table, folder / "surveys.parquet")
    _land_and_publish(landing, "surveys")
    assert _rows("select response_id, score, comment from raw.surveys order by 1") == [
        ("S1", 9, 'great, "fast"\tdelivery'),
        ("S3", 3, "slow"),
    ]
    reasons = sorted(r for (r,) in _rows("select _reason from quarantine.surveys"))
    assert reasons[0].startswith("score 11 out of range")
    assert reasons[1].startswith("unparseable JSON line")


def test_a_file_dated_after_the_interval_waits_for_its_day(warehouse_db, tmp_path):
    landing = tmp_path / "landing"
    _write(
        landing,
        "orders_2026-11-17.csv",
        [HEADER, "O9,C1,2026-11-17T10:00:00+00:00,completed,10,EUR,2026-11-17T10:00:00+00:00"],
    )
    assert _land_and_publish(landing, end=NEXT) is None
    later = datetime(2026, 11, 18, tzinfo=UTC)
    with warehouse.connect() as conn:
        batch = loading.land_files(conn, "orders", landing, NEXT, later)
        assert batch is not None
        loading.publish_batch(conn, batch.batch_id)
    assert _rows("select order_id from raw.orders") == [("O9",)]


def test_a_clean_batch_takes_the_typed_path_and_lands_as_row_by_row_checks_would(
    warehouse_db, tmp_path, monkeypatch
):
    """The fast path (COPY straight into the raw types, the file cut in two for two
    parallel sessions) must leave raw exactly as the careful text path does: repeated
    keys, an extra column, quoted empty strings, padded numbers and a BOM included."""
    monkeypatch.setattr(loading, "SPLIT_MIN_BYTES", 0)
    lines = [
        HEADER + ",channel",
        'O1,C1,2026-11-16T10:00:00+00:00,completed, 10.50 ,"",2026-11-16T10:00:00+00:00,web',
        "O2,C2,2026-11-16T11:00:00+00:00,completed,20,EUR,2026-11-16T11:00:00+00:00,",
        # a later version of O2 and an identical repeat of it: one row, the later one
        "O2,C2,2026-11-16T11:00:00+00:00,refunded,20,EUR,2026-11-16T15:00:00+00:00,shop",
        "O2,C2,2026-11-16T11:00:00+00:00,refunded,20,EUR,2026-11-16T15:00:00+00:00,shop",
        "O3,C3,2026-11-16 12:00:00,cancelled,0,,2026-11-16 12:00:00,",
    ]
    landing = tmp_path / "landing"
    path = _write(landing, "orders_2026-11-16.csv", lines)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    typed = _land_and_publish(landing)
    assert typed is not None and typed.path == "typed"
    query = """select order_id, customer_id, ordered_at, status, amount, currency, updated_at, _extra
               from raw.orders order by order_id"""
    via_copy = _rows(query)

    with warehouse.connect() as conn:
        conn.execute("truncate raw.orders")
        conn.commit()
        stream = loading.StreamedFile(
            name="the same rows, streamed",
            columns=lines[0].split(","),
            chunks=iter(["\n".join(lines[1:]).encode() + b"\n"]),
        )
        checked = loading.land_files(conn, "orders", landing, DAY, NEXT, streams=[stream])
        assert checked is not None and checked.path == "text"
        loading.publish_batch(conn, checked.batch_id)
    assert _rows(query) == via_copy
    assert [r[0] for r in via_copy] == ["O1", "O2", "O3"]
    assert via_copy[0][4:6] == (10.5, None) and via_copy[0][7] == {"channel": "web"}
    assert via_copy[1][3] == "refunded"
    assert (typed.rows_read, typed.rows_valid, typed.rows_rejected) == (5, 3, 0)


def test_one_bad_value_sends_the_whole_batch_down_the_checked_path(warehouse_db, tmp_path):
    landing = tmp_path / "landing"
    _write(
        landing,
        "orders_2026-11-16.csv",
        [
            HEADER,
            "O1,C1,2026-11-16T10:00:00+00:00,completed,10,EUR,2026-11-16T10:00:00+00:00",
            "O2,C1,2026-11-16T10:00:00+00:00,completed,ten,EUR,2026-11-16T10:00:00+00:00",
        ],
    )
    batch = _land_and_publish(landing)
    assert batch is not None and batch.path == "text"
    assert _rows("select order_id from raw.orders") == [("O1",)]
    assert _rows("select order_id, _line_number from quarantine.orders") == [("O2", 3)]


def _definition(table: str) -> dict[str, list[tuple]]:
    """What a user would compare of two tables: columns, constraints and indexes, by name."""
    schema, name = table.split(".")
    with warehouse.connect() as conn:
        return {
            "columns": conn.execute(
                """select attname, format_type(atttypid, atttypmod), attnotnull from pg_attribute
                   where attrelid = %s::regclass and attnum > 0 and not attisdropped order by attnum""",
                (table,),
            ).fetchall(),
            "constraints": conn.execute(
                """select conname, pg_get_constraintdef(oid) from pg_constraint
                   where conrelid = %s::regclass and contype <> 'n' order by 1""",
                (table,),
            ).fetchall(),
            "indexes": conn.execute(
                "select indexname, indexdef from pg_indexes where schemaname = %s and tablename = %s order by 1",
                (schema, name),
            ).fetchall(),
            "persistence_acl_options": conn.execute(
                "select relpersistence, relacl::text, reloptions from pg_class where oid = %s::regclass",
                (table,),
            ).fetchall(),
        }


@pytest.mark.parametrize("bad_row", [False, True], ids=["typed-path", "text-path"])
def test_the_first_load_into_an_empty_raw_table_adopts_the_batch_and_later_ones_merge(
    warehouse_db, tmp_path, caplog, bad_row
):
    """The first batch becomes raw.orders itself instead of being copied into it; raw
    must come out exactly as bootstrapped (columns, primary key, batch and BRIN indexes,
    logged, no grants), and the next batch must merge into it as into any raw table."""
    bootstrapped = _definition("raw.orders")
    landing = tmp_path / "landing"
    lines = [
        HEADER,
        "O1,C1,2026-11-16T10:00:00+00:00,completed,10.50,EUR,2026-11-16T10:00:00+00:00",
        "O2,C2,2026-11-16T11:00:00+00:00,completed,20,EUR,2026-11-16T11:00:00+00:00",
        "O3,C3,2026-11-16T12:00:00+00:00,cancelled,5,EUR,2026-11-16T12:00:00+00:00",
    ]
    _write(landing, "orders_2026-11-16.csv", lines + (["O9,C1,soon,completed,1,EUR,soon"] if bad_row else []))
    with warehouse.connect() as conn:
        first = loading.land_files(conn, "orders", landing, DAY, NEXT)
        assert first is not None and first.path == ("text" if bad_row else "typed")
        # kept between the land and publish tasks in logged tables: a crash cannot empty them
        assert conn.execute(
            "select relname, relpersistence from pg_class where relname like %s and relkind = 'r' order by 1",
            (f"orders_b{first.batch_id}%",),
        ).fetchall() == [
            (f"orders_b{first.batch_id}_rejected", "p"),
            (f"orders_b{first.batch_id}_typed", "p"),
        ]
        with caplog.at_level("INFO", logger="retention_pipeline.loading"):
            assert loading.publish_batch(conn, first.batch_id) == {"merged": 3, "quarantined": int(bad_row)}
    assert f"raw.orders was empty and adopted batch {first.batch_id} whole (3 rows)" in caplog.text
    assert _definition("raw.orders") == bootstrapped
    assert _rows("select order_id, status, amount, _batch_id from raw.orders order by 1") == [
        ("O1", "completed", 10.5, first.batch_id),
        ("O2", "completed", 20, first.batch_id),
        ("O3", "cancelled", 5, first.batch_id),
    ]
    assert _rows("select count(*) from raw.orders where _loaded_at is null") == [(0,)]
    assert _rows(f"select tablename from pg_tables where tablename like 'orders_b{first.batch_id}%'") == []

    # the next day: a refund of O2 and a new order, merged into the adopted table
    _write(
        landing,
        "orders_2026-11-17.csv",
        [
            HEADER,
            "O2,C2,2026-11-16T11:00:00+00:00,refunded,20,EUR,2026-11-17T09:00:00+00:00",
            "O4,C4,2026-11-17T10:00:00+00:00,completed,7,EUR,2026-11-17T10:00:00+00:00",
        ],
    )
    caplog.clear()
    with caplog.at_level("INFO", logger="retention_pipeline.loading"):
        second = _land_and_publish(landing, end=datetime(2026, 11, 18, tzinfo=UTC))
    assert second is not None
    assert "merging batch" in caplog.text and "(it holds rows)" in caplog.text
    assert _rows("select order_id, status, _batch_id from raw.orders order by 1") == [
        ("O1", "completed", first.batch_id),
        ("O2", "refunded", second.batch_id),
        ("O3", "cancelled", first.batch_id),
        ("O4", "completed", second.batch_id),
    ]
    assert _definition("raw.orders") == bootstrapped


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("create view public.my_orders as select order_id, amount from raw.orders", "objects depend on it"),
        ("grant select on raw.orders to public", "it has grants"),
        ("comment on table raw.orders is 'ours'", "it has comments"),
        (
            "create statistics raw.orders_mcv (mcv) on customer_id, status from raw.orders",
            "it has extended statistics",
        ),
        (
            "alter table raw.orders alter column currency set default 'EUR'",
            "its columns differ from the batch's",
        ),
    ],
    ids=["view", "grant", "comment", "statistics", "default"],
)
def test_an_empty_raw_table_someone_built_on_is_merged_into_not_replaced(
    warehouse_db, tmp_path, caplog, setup, reason
):
    """A view refers to the table, not its name, and grants and comments belong to the
    table: replacing it would break or drop them, so the first batch is merged."""
    with warehouse.connect() as conn:
        conn.execute(setup)
        conn.commit()
    before = _definition("raw.orders")
    landing = tmp_path / "landing"
    _write(
        landing,
        "orders_2026-11-16.csv",
        [HEADER, "O1,C1,2026-11-16T10:00:00+00:00,completed,10.50,EUR,2026-11-16T10:00:00+00:00"],
    )
    with caplog.at_level("INFO", logger="retention_pipeline.loading"):
        assert _land_and_publish(landing) is not None
    assert "merging batch" in caplog.text and f"({reason})" in caplog.text
    assert _definition("raw.orders") == before
    assert _rows("select order_id from raw.orders") == [("O1",)]
    if "view" in setup:
        assert _rows("select order_id, amount from public.my_orders") == [("O1", 10.5)]
