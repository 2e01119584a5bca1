"""The call center's files: the CSV the call list always was, and the same as XLSX.

Both are rewritten whole from the campaign on every run (a file has no partial state),
readable by their owner only (they hold contact data), and appear atomically under
their final name.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from retention_pipeline.outreach.rows import FILE_COLUMNS, CampaignRow, RowResult


def call_list_path(outbox_dir: Path, iso_week: str, suffix: str = "csv") -> Path:
    return outbox_dir / "call_lists" / f"call_list_{iso_week}.{suffix}"


def _private_tmp(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    os.chmod(tmp, 0o600)
    return tmp


class CsvSink:
    """Excel-friendly CSV: UTF-8 with BOM, CRLF."""

    name = "csv"
    is_file = True

    def __init__(self, outbox_dir: Path) -> None:
        self.outbox_dir = outbox_dir

    def path(self, iso_week: str) -> Path:
        return call_list_path(self.outbox_dir, iso_week, "csv")

    def describe(self, iso_week: str, rows: list[CampaignRow]) -> list[dict[str, object]]:
        return [{"write": str(self.path(iso_week)), "rows": len(rows), "columns": list(FILE_COLUMNS)}]

    def push(self, iso_week: str, rows: list[CampaignRow]) -> list[RowResult]:
        path = self.path(iso_week)
        tmp = _private_tmp(path)
        with tmp.open("w", encoding="utf-8-sig", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\r\n")
            writer.writerow(FILE_COLUMNS)
            for row in rows:
                writer.writerow([row.value(c) for c in FILE_COLUMNS])
        os.replace(tmp, path)
        return [RowResult(r.customer_id, "pushed", str(path)) for r in rows]


class XlsxSink:
    """The same list as a spreadsheet, for call centers that import .xlsx."""

    name = "xlsx"
    is_file = True

    def __init__(self, outbox_dir: Path) -> None:
        self.outbox_dir = outbox_dir

    def path(self, iso_week: str) -> Path:
        return call_list_path(self.outbox_dir, iso_week, "xlsx")

    def describe(self, iso_week: str, rows: list[CampaignRow]) -> list[dict[str, object]]:
        return [{"write": str(self.path(iso_week)), "rows": len(rows), "columns": list(FILE_COLUMNS)}]

    def push(self, iso_week: str, rows: list[CampaignRow]) -> list[RowResult]:
        from openpyxl import Workbook

        path = self.path(iso_week)
        wb = Workbook()
        ws = wb.active
        assert ws is not None
        ws.title = f"Call list {iso_week}"
        ws.append(list(FILE_COLUMNS))
        for row in rows:
            ws.append(
                [
                    row.value(c) if not isinstance(row.value(c), (dict, list)) else str(row.value(c))
                    for c in FILE_COLUMNS
                ]
            )
        ws.freeze_panes = "A2"
        if rows:
            # keyed to the campaign, not the clock: a re-run writes the same workbook
            stamp = rows[0].campaign_start.replace(tzinfo=None)
            wb.properties.created = stamp
            wb.properties.modified = stamp
        tmp = _private_tmp(path)
        wb.save(tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        return [RowResult(r.customer_id, "pushed", str(path)) for r in rows]
