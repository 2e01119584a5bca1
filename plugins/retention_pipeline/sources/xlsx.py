"""Excel workbooks in the landing folder (call-center and CRM exports are often .xlsx).

The first worksheet's first row is the header. openpyxl's read-only mode streams the
sheet row by row, so a large workbook is re-encoded as CSV blocks without ever being
held in memory whole, and COPY does the rest as for a CSV file. Excel has no time
zones: a date-time cell is read as UTC, like a CSV timestamp without an offset. Blank
rows are skipped, so a quarantined row's line number counts non-blank rows only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from retention_pipeline.sources.csv_blocks import encode_rows

ROWS_PER_BLOCK = 10_000


def _cell(value: Any) -> Any:
    # Excel stores every number as a float: an id typed as 1042 must not become "1042.0"
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def xlsx_as_csv(path: Path) -> tuple[list[str], Iterator[bytes]]:
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True, data_only=True)
    rows = wb.worksheets[0].iter_rows(values_only=True)
    header = next(rows, None)
    if not header:
        wb.close()
        return [], iter(())
    width = len(header)
    while width and header[width - 1] in (None, ""):  # trailing blank header cells
        width -= 1
    columns = [str(h).strip() for h in header[:width]]

    def blocks() -> Iterator[bytes]:
        try:
            batch: list[list[Any]] = []
            for row in rows:
                cells = [_cell(v) for v in row[:width]]
                if all(v is None or v == "" for v in cells):
                    continue
                cells += [None] * (width - len(cells))
                batch.append(cells)
                if len(batch) >= ROWS_PER_BLOCK:
                    yield encode_rows(batch)
                    batch = []
            if batch:
                yield encode_rows(batch)
        finally:
            wb.close()

    return columns, blocks()
