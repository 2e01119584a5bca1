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
