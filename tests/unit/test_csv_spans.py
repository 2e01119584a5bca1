"""Cutting a CSV file into runs of whole records for parallel COPY sessions."""

from __future__ import annotations

import csv
import io
import itertools

import pytest

from retention_pipeline import loading


def _records(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


@pytest.mark.parametrize("parts", [1, 2, 3, 7])
def test_spans_cover_every_record_once_and_never_cut_inside_quotes(tmp_path, monkeypatch, parts):
    monkeypatch.setattr(loading, "_COPY_CHUNK", 64)  # many blocks: cuts fall across block edges
    rows = [["id", "note"]]
    for i in range(200):
        note = f'line one\nline "two" of {i}' if i % 3 == 0 else f"plain {i}, with a comma"
        rows.append([f"K{i}", note])
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\r\n" if parts == 3 else "\n").writerows(rows)
    path = tmp_path / "notes.csv"
    data = buf.getvalue().encode()
    path.write_bytes(data)

    spans = list(loading.csv_record_spans(path, parts))

    assert 1 <= len(spans) <= parts
    assert spans[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    pieces = [_records(data[begin:end]) for begin, end in spans]
    assert [r for piece in pieces for r in piece] == rows[1:]  # header excluded, nothing lost


def test_a_file_with_only_a_header_has_no_records(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"id,note\n")
    assert list(loading.csv_record_spans(path, 2)) == []
