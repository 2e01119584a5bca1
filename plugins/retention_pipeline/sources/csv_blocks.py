"""Rows from Python drivers, re-encoded as CSV blocks for COPY.

COPY parses text far faster than any per-row insert, so even a database extract is
written as CSV: the loader then treats it like a file. Values are rendered the way the
landing contract reads them (ISO 8601 timestamps, ``true``/``false``, empty = null).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, tzinfo
from typing import Any


def render(value: Any, naive_tz: tzinfo | None = None) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.tzinfo is None and naive_tz is not None:
            value = value.replace(tzinfo=naive_tz)
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return value


def encode_rows(rows: Iterable[Sequence[Any]], naive_tz: tzinfo | None = None) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerows([render(v, naive_tz) for v in row] for row in rows)
    return buf.getvalue().encode("utf-8")


def peek(blocks: Iterator[bytes]) -> Iterator[bytes] | None:
    """The same stream, or None when it yields no data at all (an empty window)."""
    for block in blocks:
        if block:
            return _prepend(block, blocks)
    return None


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest
