"""Excel files and the call-outcomes entity through the landing folder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from retention_pipeline import ingest_tasks, warehouse
from retention_pipeline.entities import ENTITIES

pytestmark = pytest.mark.integration

D1 = datetime(2026, 11, 16, tzinfo=UTC)
D2 = D1 + timedelta(days=1)
COLUMNS = [
    "attempt_id",
    "customer_id",
    "campaign",
    "called_at",
    "reached",
    "agreed_to_return",
    "reason",
    "agent_id",
    "updated_at",
]


def _rows(query: str) -> list[tuple]:
    with warehouse.connect() as conn:
        return conn.execute(query).fetchall()  # type: ignore[arg-type]


def test_call_outcomes_from_xlsx_stream_into_raw_with_quarantine(warehouse_db, tmp_path):
    from openpyxl import Workbook

    assert ENTITIES["call_outcomes"].column_names == COLUMNS
    folder = tmp_path / "landing" / "call_outcomes"
    folder.mkdir(parents=True)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("results")
    ws.append(COLUMNS)
    called = datetime(2026, 11, 16, 10, 30)  # Excel has no zones: UTC
    for i in range(25_000):  # more than one block of rows
        ws.append(
            [
                f"A{i}",
                1000 + i,
                "2026-W47",
                called,
                i % 3 != 0,
                (i % 3 == 1) if i % 3 else None,
                "price",
                f"agent{i % 7}",
                called,
            ]
        )
    ws.append([])  # Excel users leave blank rows
    ws.append(["A-bad", 1, "2026-W47", "not-a-date", True, True, None, "agent1", called])
    wb.save(folder / "outcomes_2026-11-16.xlsx")

    batch_id = ingest_tasks.land_entity("call_outcomes", D1, D2)
    assert batch_id is not None
    ingest_tasks.validate_batch(batch_id, "test")
    ingest_tasks.publish(batch_id)
    assert _rows(
        "select count(*), count(*) filter (where reached), count(*) filter (where agreed_to_return) from raw.call_outcomes"
    ) == [(25_000, 16_666, 8_333)]
    assert _rows("select customer_id, called_at from raw.call_outcomes where attempt_id = 'A0'") == [
        ("1000", datetime(2026, 11, 16, 10, 30, tzinfo=UTC))
    ]
    assert _rows("select attempt_id, _reason, _line_number from quarantine.call_outcomes") == [
        ("A-bad", "invalid timestamptz in called_at: not-a-date", 25_002)  # blank rows are not counted
    ]
    assert _rows("select rows_read, rows_loaded, rows_quarantined, status from ops.load_batches") == [
        (25_001, 25_000, 1, "published")
    ]


def test_an_entity_without_files_is_accepted(warehouse_db):
    assert ingest_tasks.land_entity("call_outcomes", D1, D2) is None
    assert ingest_tasks.validate_batch(None, "test") is None
    assert ingest_tasks.publish(None) == {}
    assert _rows("select count(*) from raw.call_outcomes") == [(0,)]
