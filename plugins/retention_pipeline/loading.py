"""Landing files into the warehouse: land -> (validate) -> publish, one batch at a time.

The shape follows what was measured on this stack: a raw ``COPY`` of the file into an
unindexed batch table of text columns, then parsing, rule checks and the merge in SQL,
set-based. Python never holds more than one COPY block of a file in memory.

* ``land_files`` picks the files of an entity not yet in the ``ops.loaded_files`` ledger
  (name + SHA-256), copies them into ``landing.<entity>_b<batch>``, and splits the rows
  into ``..._typed`` (one row per key, cast to the raw types) and ``..._rejected``
  (whole rows, as text, with the first rule they broke).
* the quality gate validates ``..._typed`` (see ``quality.py``);
* ``publish_batch`` merges ``..._typed`` into ``raw.<entity>`` (latest ``updated_at``
  wins), moves ``..._rejected`` into ``quarantine.<entity>``, records the files and the
  batch counts, all in one transaction. Nothing of a batch is visible before that.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import logging
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from retention_pipeline.config import get_settings
from retention_pipeline.ddl import raw_batch_index_ddl, raw_batch_index_name
from retention_pipeline.entities import ENTITIES, Entity
from retention_pipeline.warehouse import scalar

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".csv", ".jsonl", ".parquet", ".xlsx")
# A file named ..._YYYY-MM-DD.<ext> becomes available on that day: a run for an earlier
# interval leaves it for later, so a backfill sees what it would have seen back then.
_FILE_DATE = re.compile(r"_(\d{4}-\d{2}-\d{2})\.[a-z]+$")
_COPY_CHUNK = 1 << 20
# A batch's tables live for one load: autovacuum has nothing to do there, and when it
# starts on one anyway (10M inserted rows invite it), the next DDL on the table (the
# publish, a drop) waits deadlock_timeout (1 s) before autovacuum is cancelled.
_BATCH = "with (autovacuum_enabled = false)"


class BatchRejected(RuntimeError):
    """The batch as a whole cannot be loaded (e.g. a required column is missing)."""


@dataclass
class StreamedFile:
    """A "virtual file": an extract from a source system, streamed as headerless CSV blocks.

    Database and API extracts go through exactly the COPY path and rule checks of a
    landing file, so a row from a shop database and a row from a CSV export are judged
    alike. ``name`` goes into the file ledger (e.g. ``sql:orders:<window>``); the SHA-256
    is computed while the blocks are copied, so the extract is read once.
    """

    name: str
    columns: list[str]
    chunks: Iterator[bytes]
    sha256: str = ""

    def hashed(self) -> Iterator[bytes]:
        digest = hashlib.sha256()
        for block in self.chunks:
            digest.update(block)
            yield block
        self.sha256 = digest.hexdigest()


@dataclass
class LandedBatch:
    batch_id: int
    entity: str
    files: list[str]
    rows_read: int
    rows_valid: int
    rows_rejected: int
    extra_columns: list[str] = field(default_factory=list)
    # "typed": every row was clean and COPY parsed the types; "text": checked row by row
    path: str = "text"

    @property
    def typed_table(self) -> str:
        return f"landing.{self.entity}_b{self.batch_id}_typed"

    @property
    def rejected_table(self) -> str:
        return f"landing.{self.entity}_b{self.batch_id}_rejected"


def file_available_on(path: Path) -> date | None:
    m = _FILE_DATE.search(path.name)
    return date.fromisoformat(m.group(1)) if m else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(_COPY_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def candidate_files(entity: str, landing_dir: Path, interval_end: datetime) -> list[Path]:
    """Files of the entity that are available before the interval end, oldest first."""
    folder = landing_dir / entity
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        if path.suffix not in SUPPORTED_SUFFIXES or path.name.startswith("."):
            continue
        available = file_available_on(path)
        if available is not None and available >= interval_end.date():
            continue
        found.append(path)
    return found


def _sql_ident(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise BatchRejected(f"column name {name!r} is not a plain identifier")
    return name.lower()


# --- reading files as COPY streams ------------------------------------------------------


def _csv_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        header = next(csv.reader(fh), None)
    if not header:
        raise BatchRejected(f"{path.name}: empty file, no header row")
    return [h.strip() for h in header]


def _stream_file(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        first = fh.read(3)
        if first != b"\xef\xbb\xbf":  # drop a UTF-8 BOM (Excel writes one)
            yield first
        yield from iter(lambda: fh.read(_COPY_CHUNK), b"")


def _parquet_as_csv(path: Path) -> tuple[list[str], Iterator[bytes]]:
    """Parquet row groups re-encoded as CSV blocks, so COPY still does the heavy lifting."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    columns = list(pf.schema_arrow.names)

    def blocks() -> Iterator[bytes]:
        for batch in pf.iter_batches(batch_size=65536):
            buf = io.BytesIO()
            pacsv.write_csv(batch, buf, pacsv.WriteOptions(include_header=False))
            yield buf.getvalue()

    return columns, blocks()


def _jsonl_keys(path: Path, sample: int = 1000) -> list[str]:
    keys: dict[str, None] = {}
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i >= sample:
                break
            if line.strip():
                try:
                    keys.update(dict.fromkeys(json.loads(line)))
                except (json.JSONDecodeError, TypeError):
                    continue
    return list(keys)


# --- landing ----------------------------------------------------------------------------


def land_files(
    conn: psycopg.Connection,
    entity_name: str,
    landing_dir: Path,
    interval_start: datetime,
    interval_end: datetime,
    future_tolerance_minutes: int = 10,
    streams: list[StreamedFile] | None = None,
    source: str | None = None,
) -> LandedBatch | None:
    """Copy the new files of one entity into a batch; None when there is nothing new.

    With ``streams`` the batch is made of those extracts instead of the landing folder
    (``source`` names the origin in ``ops.load_batches``).
    """
    entity = ENTITIES[entity_name]
    files: list[tuple[Path | StreamedFile, str]] = []
    if streams is not None:
        files = [(s, "") for s in streams]
        if not files:
            return None
    for path in [] if streams is not None else candidate_files(entity_name, landing_dir, interval_end):
        digest = sha256_of(path)
        seen = conn.execute(
            "select 1 from ops.loaded_files where entity = %s and file_name = %s and sha256 = %s",
            (entity_name, path.name, digest),
        ).fetchone()
        if not seen:
            files.append((path, digest))
    if not files:
        log.info("%s: no new files in %s", entity_name, landing_dir / entity_name)
        return None

    batch_id: int = scalar(
        conn,
        """insert into ops.load_batches (entity, source, interval_start, interval_end, status, started_at)
           values (%s, %s, %s, %s, 'landed', clock_timestamp()) returning batch_id""",
        (entity_name, source or f"files:{landing_dir / entity_name}", interval_start, interval_end),
    )
    conn.commit()  # the batch id is reserved even if landing fails, so the failure is recorded

    try:
        batch = _land(conn, entity, batch_id, files, interval_end, future_tolerance_minutes)
    except Exception as exc:
        conn.rollback()
        table = f"landing.{entity_name}_b{batch_id}"
        conn.execute(f"drop table if exists {table}, {table}_typed, {table}_rejected")
        conn.execute(
            "update ops.load_batches set status = 'failed', error = %s, finished_at = clock_timestamp() where batch_id = %s",
            (str(exc)[:4000], batch_id),
        )
        conn.commit()
        raise
    conn.commit()
    return batch


def _land(
    conn: psycopg.Connection,
    entity: Entity,
    batch_id: int,
    files: list[tuple[Path | StreamedFile, str]],
    interval_end: datetime,
    future_tolerance_minutes: int,
) -> LandedBatch:
    table = f"landing.{entity.name}_b{batch_id}"
    known = entity.column_names
    plans = []
    extra: dict[str, None] = {}
    for path, digest in files:
        if isinstance(path, StreamedFile):
            columns = [_sql_ident(c) for c in path.columns]
        elif path.suffix == ".csv":
            columns = [_sql_ident(c) for c in _csv_header(path)]
        elif path.suffix == ".parquet":
            columns = [_sql_ident(c) for c in _parquet_as_csv(path)[0]]
        elif path.suffix == ".xlsx":
            from retention_pipeline.sources.xlsx import xlsx_as_csv

            columns = [_sql_ident(c) for c in xlsx_as_csv(path)[0]]
        else:
            columns = [_sql_ident(c) for c in _jsonl_keys(path)]
        missing = [c.name for c in entity.columns if c.required and c.name not in columns]
        if missing:
            raise BatchRejected(
                f"{entity.name}: file {path.name} lacks required column(s) {', '.join(missing)}; "
                "nothing of this batch was published"
            )
        extra.update(dict.fromkeys(c for c in columns if c not in known))
        plans.append((path, digest, columns))

    _session_settings(conn)
    typed = None
    if all(not isinstance(p, StreamedFile) and p.suffix != ".jsonl" for p, _, _ in plans):
        typed = _land_typed(conn, entity, table, plans, list(extra), interval_end, future_tolerance_minutes)
    fast = typed is not None
    counts, repeats = typed if typed is not None else (_land_text(conn, entity, table, plans, list(extra)), 0)
    for path, digest, _ in plans:
        if isinstance(path, StreamedFile):
            digest = path.sha256  # known only now that every block went through COPY
        conn.execute(
            "insert into ops.batch_files (batch_id, file_name, sha256, rows_read) values (%s, %s, %s, %s)",
            (batch_id, path.name, digest, counts.get(path.name, 0)),
        )
        log.info("%s: copied %d rows from %s", entity.name, counts.get(path.name, 0), path.name)
    rows_read = sum(counts.values())

    if not fast:
        _split(conn, entity, table, list(extra), interval_end, future_tolerance_minutes)
        conn.execute(f"drop table {table}")
        valid = scalar(conn, f"select count(*) from {table}_typed")
        rejected = scalar(conn, f"select count(*) from {table}_rejected")
    else:  # known without counting: every row is valid, older versions were deleted
        valid, rejected = rows_read - repeats, 0
    conn.execute(
        """update ops.load_batches set rows_read = %s, rows_loaded = %s, rows_quarantined = %s,
           extra_columns = %s where batch_id = %s""",
        (rows_read, rows_read - rejected, rejected, list(extra), batch_id),
    )
    if extra:
        log.warning("%s: extra columns kept in raw.%s._extra: %s", entity.name, entity.name, ", ".join(extra))
    log.info(
        "%s batch %d (%s path): %d rows read, %d keys to publish (%d older versions merged away), %d quarantined",
        entity.name,
        batch_id,
        "typed" if fast else "text",
        rows_read,
        valid,
        rows_read - valid - rejected,
        rejected,
    )
    return LandedBatch(
        batch_id=batch_id,
        entity=entity.name,
        files=[p.name for p, _, _ in plans],
        rows_read=rows_read,
        rows_valid=valid,
        rows_rejected=rejected,
        extra_columns=list(extra),
        path="typed" if fast else "text",
    )


def _open_stream(path: Path | StreamedFile) -> tuple[Iterator[bytes], bool]:
    """The file as CSV blocks for COPY, and whether the first line is a header."""
    if isinstance(path, StreamedFile):
        return path.hashed(), False
    if path.suffix == ".csv":
        return _stream_file(path), True
    if path.suffix == ".xlsx":
        from retention_pipeline.sources.xlsx import xlsx_as_csv

        return xlsx_as_csv(path)[1], False
    return _parquet_as_csv(path)[1], False


def _copy_into(
    conn: psycopg.Connection,
    table: str,
    path: Path | StreamedFile,
    columns: list[str],
    options: str = "",
    span: tuple[int, int] | None = None,
) -> int:
    """COPY one file (or the byte ``span`` of whole records of a CSV file) into
    ``table``; returns the rows copied."""
    if span is None:
        stream, header = _open_stream(path)
    else:
        assert isinstance(path, Path)
        stream, header = _read_span(path, *span), False
    cursor = conn.cursor()
    with cursor.copy(
        f"copy {table} ({', '.join(columns)}) from stdin with (format csv, header {str(header).lower()}{options})"
    ) as copy:
        for block in stream:
            copy.write(block)
    return cursor.rowcount


def _land_text(
    conn: psycopg.Connection,
    entity: Entity,
    table: str,
    plans: list[tuple[Path | StreamedFile, str, list[str]]],
    extra: list[str],
) -> dict[str, int]:
    """The careful path: every value lands as text, so nothing can fail to load; the
    rule checks then decide, row by row, what is typed and what is quarantined."""
    col_defs = ", ".join(f"{c} text" for c in entity.column_names + extra)
    conn.execute(
        f"create unlogged table {table} ({col_defs}, _parse_error text, _source_file text, _row bigserial) {_BATCH}"
    )
    counts: dict[str, int] = {}
    for path, _digest, columns in plans:
        # the file name rides in a column default: no second pass over the rows to tag them
        conn.execute(f"alter table {table} alter column _source_file set default {_literal(path.name)}")
        if isinstance(path, StreamedFile) or path.suffix != ".jsonl":
            counts[path.name] = _copy_into(conn, table, path, columns)
        else:
            counts[path.name] = _copy_jsonl(conn, table, path, columns)
    return counts


def _land_typed(
    conn: psycopg.Connection,
    entity: Entity,
    table: str,
    plans: list[tuple[Path | StreamedFile, str, list[str]]],
    extra: list[str],
    interval_end: datetime,
    future_tolerance_minutes: int,
) -> tuple[dict[str, int], int] | None:
    """The fast path for a batch of files in which every row is clean; returns the rows
    per file and how many older versions of repeated keys it dropped.

    COPY parses straight into the raw types (the server's own input functions, the
    cheapest parse there is), the hard rules run on typed values, and the batch table
    becomes ``..._typed`` in place: one write of the rows instead of three (text,
    checked, typed). Large CSV files are cut at record boundaries and copied by
    parallel sessions. The first value that does not parse, or any row that breaks a
    rule, drops this attempt and returns None: the careful text path then re-reads the
    files and quarantines row by row, so the result is the same either way. Only files
    qualify (a source extract is streamed once and cannot be re-read).
    """
    from psycopg import errors as pg_errors

    key, version = entity.key, entity.version_column
    col_defs = ", ".join(
        [f"{c.name} {c.sql_type}{' not null' if c.name == key else ''}" for c in entity.columns]
        + [f"{x} text" for x in extra]
    )
    # no _row / _source_file columns here: nothing of this path is quarantined, and a
    # per-row default costs as much as parsing a column.
    # Logged, like every table a batch is kept in between its land and publish tasks: a
    # server crash in between cannot empty it (crash recovery truncates an unlogged
    # table, and publish would then record the files as loaded with none of their rows),
    # and an empty raw table can adopt it whole (``_adopt_as_raw``). Scratch tables that
    # live within one task stay unlogged. The two-session COPY into a logged table
    # measured as fast as into an unlogged one (2M orders, 1.08 s against 1.01 s).
    conn.execute(f"create table {table} ({col_defs}) {_BATCH}")
    conn.commit()  # visible to the parallel COPY sessions; an abandoned attempt is dropped
    _session_settings(conn)
    try:
        counts = _copy_typed(conn, table, plans)
    except (pg_errors.DataError, pg_errors.NotNullViolation) as exc:
        _abandon(conn, table)
        log.info(
            "%s: a value does not parse (%s); checking the batch row by row",
            entity.name,
            str(exc).splitlines()[0],
        )
        return None

    rules = []
    for c in entity.columns:
        if c.sql_type == "text":
            if not c.nullable:
                rules.append(f"nullif(btrim({c.name}), '') is null")
            if c.allowed:
                rules.append(f"lower(btrim({c.name})) not in ({', '.join(_literal(a) for a in c.allowed)})")
        elif not c.nullable:
            rules.append(f"{c.name} is null")
        if c.min_value is not None:
            rules.append(f"{c.name} < {c.min_value}")
        if c.max_value is not None:
            rules.append(f"{c.name} > {c.max_value}")
    rules.append(
        f"{entity.event_column} > timestamptz {_literal(interval_end.isoformat())}"
        f" + interval '{int(future_tolerance_minutes)} minutes'"
    )
    broken = scalar(conn, f"select count(*) from {table} where " + " or ".join(f"({r})" for r in rules))
    if broken:
        _abandon(conn, table)
        log.info("%s: %d rows break a rule; checking the batch row by row", entity.name, broken)
        return None

    repeats = 0
    # One version per key. The batch's primary key is the cheapest way to learn there is
    # none to merge (one parallel sort); only when it fails are the repeated keys looked
    # at. It stays: it is what the gate relies on for uniqueness, and what raw adopts.
    conn.execute("savepoint typed_unique")
    try:
        conn.execute(f"alter table {table} add primary key ({key})")
    except pg_errors.UniqueViolation:
        conn.execute("rollback to savepoint typed_unique")
        # Repeats at the same version must be identical (checked next), so which of
        # them survives does not matter and the row's physical address will do.
        order = f"{version} desc nulls last" if version else "ctid"
        content = "md5(row(" + ", ".join(entity.column_names + extra) + ")::text)"
        conn.execute(
            f"""create temp table _repeated on commit drop as
                select {key}, ctid as at, {version or "null::timestamptz"} as v, {content} as h,
                       row_number() over (partition by {key} order by {order}) as n
                from {table}
                where {key} in (select {key} from {table} group by 1 having count(*) > 1)"""
        )
        clash = scalar(
            conn,
            f"""select count(*) from (select 1 from _repeated r
                 where v is not distinct from (select v from _repeated f where f.{key} = r.{key} and f.n = 1)
                 group by {key} having count(distinct h) > 1) x""",
        )
        if clash:
            _abandon(conn, table)
            log.info(
                "%s: %d keys repeat with different content; checking the batch row by row", entity.name, clash
            )
            return None
        repeats = conn.execute(
            f"delete from {table} t using _repeated r where t.ctid = r.at and r.n > 1"
        ).rowcount
        conn.execute("drop table _repeated")
        conn.execute(f"alter table {table} add primary key ({key})")

    conn.execute(f"alter table {table} add column _extra jsonb")
    if extra:  # kept, not lost: folded into _extra like on the text path
        conn.execute(f"update {table} set _extra = {_extra_json(extra)}")
        conn.execute(f"alter table {table} " + ", ".join(f"drop column {x}" for x in extra))
    conn.execute(f"alter table {table} rename to {table.split('.', 1)[1]}_typed")
    known = ", ".join(f"{c} text" for c in entity.column_names)
    conn.execute(
        f"""create table {table}_rejected
            ({known}, _extra jsonb, _reason text, _source_file text, _line_number bigint) {_BATCH}"""
    )
    return counts, repeats


# CSV files at least this large are cut into runs of records copied by parallel sessions
# (RETENTION_LOAD_COPY_STREAMS; two measured 1.77x one on 2 cores, more than cores do not pay).
SPLIT_MIN_BYTES = 16 << 20


def _session_settings(conn: psycopg.Connection) -> None:
    conn.execute("set local timezone = 'UTC'")  # timestamps without an offset are UTC
    conn.execute(f"set local maintenance_work_mem = {_literal(get_settings().load_sort_memory)}")


def _abandon(conn: psycopg.Connection, table: str) -> None:
    """Give up the typed attempt: its (committed) table goes, nothing else."""
    conn.rollback()
    conn.execute(f"drop table if exists {table}")
    _session_settings(conn)


def _copy_typed(
    conn: psycopg.Connection, table: str, plans: list[tuple[Path | StreamedFile, str, list[str]]]
) -> dict[str, int]:
    import psycopg

    streams = get_settings().load_copy_streams
    pieces: list[tuple[Path | StreamedFile, list[str], tuple[int, int] | None]] = []
    for path, _digest, columns in plans:
        spans: list[tuple[int, int] | None] = [None]
        if isinstance(path, Path) and path.suffix == ".csv" and path.stat().st_size >= SPLIT_MIN_BYTES:
            spans = list(csv_record_spans(path, streams))
        pieces.extend((path, columns, span) for span in spans)

    def copy(
        session: psycopg.Connection, piece: tuple[Path | StreamedFile, list[str], tuple[int, int] | None]
    ) -> int:
        path, columns, span = piece
        # a quoted empty string is "no value" here, as on the text path
        force_null = f", force_null ({', '.join(columns)})"
        return _copy_into(session, table, path, columns, force_null, span=span)

    counts: dict[str, int] = {}
    if len(pieces) == 1:
        counts[pieces[0][0].name] = copy(conn, pieces[0])
        return counts
    params = conn.info.get_parameters()
    if conn.info.password:
        params["password"] = conn.info.password

    def worker(
        share: list[tuple[Path | StreamedFile, list[str], tuple[int, int] | None]],
    ) -> list[tuple[str, int]]:
        with psycopg.connect(**params, autocommit=True) as session:  # type: ignore[arg-type]
            session.execute("set timezone = 'UTC'")
            return [(piece[0].name, copy(session, piece)) for piece in share]

    shares = [pieces[i::streams] for i in range(streams)]
    with ThreadPoolExecutor(max_workers=streams) as pool:
        for done in [pool.submit(worker, share) for share in shares if share]:
            for name, rows in done.result():
                counts[name] = counts.get(name, 0) + rows
    return counts


def csv_record_spans(path: Path, parts: int) -> Iterator[tuple[int, int]]:
    """Byte ranges of up to ``parts`` runs of whole records of a CSV file, header excluded.

    A newline ends a record only outside quotes, i.e. after an even number of quote
    characters (RFC 4180 doubles a quote inside a field, which keeps the count even),
    so one pass of ``bytes.count`` finds safe cuts without parsing the file.
    """
    size = path.stat().st_size
    targets = [0] + [size * k // parts for k in range(1, parts)]
    cuts: list[int] = []
    quotes_before = 0  # quote characters before the current block
    offset = 0
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(_COPY_CHUNK), b""):
            while targets and offset + len(block) > targets[0]:
                start = max(targets[0], cuts[-1] if cuts else 0) - offset
                nl = block.find(b"\n", start)
                while nl != -1 and (quotes_before + block.count(b'"', 0, nl)) % 2:
                    nl = block.find(b"\n", nl + 1)
                if nl == -1:
                    targets[0] = offset + len(block)  # look on in the next block
                    break
                cuts.append(offset + nl + 1)
                targets.pop(0)
            quotes_before += block.count(b'"')
            offset += len(block)
            if not targets:
                break
    bounds = [*cuts, size]
    for begin, end in itertools.pairwise(bounds):
        if end > begin:
            yield begin, end


def _read_span(path: Path, begin: int, end: int) -> Iterator[bytes]:
    with path.open("rb") as fh:
        fh.seek(begin)
        left = end - begin
        while left > 0:
            block = fh.read(min(_COPY_CHUNK, left))
            if not block:
                break
            left -= len(block)
            yield block


def _extra_json(extra: list[str]) -> str:
    if not extra:
        return "null::jsonb"
    pairs = ", ".join(f"'{x}', {x}" for x in extra)
    return f"nullif(jsonb_strip_nulls(jsonb_build_object({pairs})), '{{}}')"


def _split(
    conn: psycopg.Connection,
    entity: Entity,
    table: str,
    extra: list[str],
    interval_end: datetime,
    future_tolerance_minutes: int,
) -> None:
    """Check every row against the entity's hard rules, set-based, and split the batch."""
    checks: list[tuple[str, str]] = [("_parse_error is not null", "_parse_error")]
    for c in entity.columns:
        v = f"nullif(btrim({c.name}), '')"
        if not c.nullable:
            checks.append((f"{v} is null", f"'missing {c.name}'"))
        base_type = c.sql_type.split("(")[0]
        if base_type != "text":
            checks.append(
                (
                    f"{v} is not null and not ops.is_valid_input({v}, '{c.sql_type}')",
                    f"'invalid {base_type} in {c.name}: ' || left({c.name}, 100)",
                )
            )
        if c.allowed:
            allowed = ", ".join(_literal(a) for a in c.allowed)
            checks.append(
                (
                    f"{v} is not null and lower({v}) not in ({allowed})",
                    f"'unknown {c.name} ' || {_literal(chr(39))} || left({c.name}, 100) || {_literal(chr(39))}",
                )
            )
        if c.min_value is not None or c.max_value is not None:
            low = "-infinity" if c.min_value is None else c.min_value
            high = "infinity" if c.max_value is None else c.max_value
            cond = []
            if c.min_value is not None:
                cond.append(f"{v}::numeric < {c.min_value}")
            if c.max_value is not None:
                cond.append(f"{v}::numeric > {c.max_value}")
            checks.append(
                (
                    f"{v} is not null and ({' or '.join(cond)})",
                    f"'{c.name} ' || {c.name} || ' out of range [{low}, {high}]'",
                )
            )
    ev = f"nullif(btrim({entity.event_column}), '')"
    checks.append(
        (
            f"{ev}::timestamptz > timestamptz {_literal(interval_end.isoformat())} + interval '{int(future_tolerance_minutes)} minutes'",
            f"'{entity.event_column} ' || {entity.event_column} || ' is in the future of the load interval'",
        )
    )
    reason = "case " + " ".join(f"when {cond} then {why}" for cond, why in checks) + " end"
    known = entity.column_names
    content = "md5(row(" + ", ".join(known + extra) + ")::text)"
    version = (
        f"nullif(btrim({entity.version_column}), '')::timestamptz"
        if entity.version_column
        else "null::timestamptz"
    )
    conn.execute(
        f"""create unlogged table {table}_checked {_BATCH} as
            select t.*, {reason} as _reason from {table} t"""
    )
    # Two different rows for one key at the same version: nobody can tell which is right.
    conn.execute(
        f"""update {table}_checked c set _reason = 'duplicate {entity.key} with different content in one batch'
            from (
                select {entity.key}, v from (
                    select {entity.key}, {version} as v, {content} as h,
                           max({version}) over (partition by {entity.key}) as latest
                    from {table}_checked
                    where _reason is null
                      -- hashing every row costs more than the check: only keys seen twice
                      and {entity.key} in (
                          select {entity.key} from {table}_checked
                          where _reason is null group by 1 having count(*) > 1
                      )
                ) x
                where v is not distinct from latest
                group by 1, 2 having count(distinct h) > 1
            ) d
            where c._reason is null and c.{entity.key} = d.{entity.key}"""
    )
    header_offset = 2  # 1-based line numbers of a CSV with a header row
    extra_json = _extra_json(extra)
    conn.execute(
        f"""create table {table}_rejected {_BATCH} as
            select {", ".join(known)}, {extra_json} as _extra, _reason, _source_file,
                   _row - _first + {header_offset} as _line_number
            from {table}_checked x
            -- first row of each file by aggregate, not a window: no sort of the whole batch
            join (select _source_file, min(_row) as _first from {table}_checked group by 1) f
                using (_source_file)
            where _reason is not null"""
    )
    casts = ", ".join(
        f"nullif(btrim({c.name}), '')::{c.sql_type} as {c.name}"
        if c.sql_type != "text"
        else f"nullif({c.name}, '') as {c.name}"
        for c in entity.columns
    )
    order = f"{entity.key}, {version} desc nulls last, _row desc"
    conn.execute(
        f"""create table {table}_typed {_BATCH} as
            select distinct on ({entity.key}) {casts}, {extra_json} as _extra
            from {table}_checked where _reason is null
            order by {order}"""
    )
    conn.execute(f"alter table {table}_typed add primary key ({entity.key})")
    conn.execute(f"drop table {table}_checked")


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _copy_jsonl(conn: psycopg.Connection, table: str, path: Path, columns: list[str]) -> int:
    # Each line lands whole in one text column (a CSV dialect whose quote and delimiter
    # never occur in JSON text), then SQL pulls the fields out. A line that is not JSON
    # becomes a row with a parse error, so it is quarantined rather than lost.
    conn.execute("create temp table if not exists _jsonl_lines (line text)")
    conn.execute("truncate _jsonl_lines")
    with conn.cursor().copy(
        "copy _jsonl_lines from stdin with (format csv, quote e'\\x01', delimiter e'\\x02')"
    ) as copy:
        for block in _stream_file(path):
            copy.write(block)
    col_list = ", ".join(columns)
    fields = ", ".join(f"doc ->> '{c}'" for c in columns)
    return conn.execute(
        f"""insert into {table} ({col_list}, _parse_error)
            select {fields},
                   case when doc is null then 'unparseable JSON line: ' || left(line, 200) end
            from (
                select line, case when ops.is_valid_input(line, 'jsonb') then line::jsonb end as doc
                from _jsonl_lines where btrim(line) <> ''
            ) l"""
    ).rowcount


# --- publishing ---------------------------------------------------------------------------


def publish_batch(conn: psycopg.Connection, batch_id: int) -> dict[str, int]:
    """Merge a validated batch into raw and quarantine, in one transaction."""
    row = conn.execute(
        "select entity, status, rows_read from ops.load_batches where batch_id = %s for update",
        (batch_id,),
    ).fetchone()
    if row is None:
        raise ValueError(f"no load batch {batch_id}")
    entity_name, status, rows_read = row
    if status == "published":
        log.info("batch %d is already published; nothing to do", batch_id)
        conn.rollback()
        return {}
    if status != "landed":
        raise RuntimeError(f"batch {batch_id} is {status}, only a landed batch can be published")
    entity = ENTITIES[entity_name]
    table = f"landing.{entity_name}_b{batch_id}"
    cols = entity.column_names
    col_list = ", ".join(cols)
    merged = _merge_into_raw(conn, entity, f"{table}_typed", batch_id, rows_read)
    quarantined = conn.execute(
        f"""insert into quarantine.{entity_name} ({col_list}, _extra, _reason, _source_file, _line_number, _batch_id, _quarantined_at)
            select {col_list}, _extra, _reason, _source_file, _line_number, %s, clock_timestamp()
            from {table}_rejected r
            -- a source re-read over its overlap (or a re-run) sends the same bad row again:
            -- keep one copy of each (row, reason), whichever extract it came from
            where row({", ".join(f"r.{c}" for c in cols)}, r._extra, r._reason)::text not in (
                select row({", ".join(f"q.{c}" for c in cols)}, q._extra, q._reason)::text
                from quarantine.{entity_name} q
            )""",
        (batch_id,),
    ).rowcount
    conn.execute(
        """insert into ops.loaded_files (entity, file_name, sha256, batch_id, rows_read, loaded_at)
           select %s, file_name, sha256, batch_id, rows_read, clock_timestamp()
           from ops.batch_files where batch_id = %s
           on conflict do nothing""",
        (entity_name, batch_id),
    )
    # A source's watermark moves only with the data it covers: same transaction as raw.
    conn.execute(
        """insert into ops.source_watermarks as w (entity, source_key, watermark, cursor, batch_id, updated_at)
           select entity, source_key, watermark, cursor, batch_id, clock_timestamp()
           from ops.pending_watermarks where batch_id = %s
           on conflict (entity, source_key) do update set
               cursor = case when excluded.watermark >= w.watermark then excluded.cursor else w.cursor end,
               watermark = greatest(w.watermark, excluded.watermark),
               batch_id = case when excluded.watermark >= w.watermark then excluded.batch_id else w.batch_id end,
               updated_at = excluded.updated_at""",
        (batch_id,),
    )
    conn.execute(
        "update ops.load_batches set status = 'published', finished_at = clock_timestamp() where batch_id = %s",
        (batch_id,),
    )
    conn.execute(f"drop table if exists {table}_typed, {table}_rejected")  # _typed may be raw now
    conn.commit()
    log.info(
        "%s batch %d published: %d of %d rows read changed raw.%s, %d quarantined",
        entity_name,
        batch_id,
        merged,
        rows_read,
        entity_name,
        quarantined,
    )
    return {"merged": merged, "quarantined": quarantined}


# A batch at least this large, and larger than what raw already holds, is merged with
# raw's indexes (primary key, batch id) dropped and rebuilt after: one sort each instead
# of millions of index insertions (the initial load and backfills; daily batches never
# qualify).
BULK_MERGE_MIN_ROWS = 100_000


def _merge_into_raw(
    conn: psycopg.Connection, entity: Entity, typed: str, batch_id: int, batch_rows: int
) -> int:
    """Latest ``updated_at`` wins: update the keys raw has in an older (or, at the same
    version, a different) form, insert the keys it does not have. Returns rows changed.
    ``batch_rows`` (the rows read, an upper bound of the batch's keys) decides whether
    this is a bulk merge.

    Plain UPDATE + INSERT rather than ``INSERT ... ON CONFLICT``: speculative insertion
    probes the index row by row, which measured 1.6x slower on a 2M-row batch. The
    SHARE ROW EXCLUSIVE lock keeps a concurrent batch of the same entity from slipping a
    key in between the two statements; readers are not blocked (except for the moment
    of a bulk merge's primary-key rebuild).
    """
    raw = f"raw.{entity.name}"
    adopted = _adopt_as_raw(conn, entity, typed, batch_id)
    if adopted is not None:
        return adopted
    cols = entity.column_names
    col_list = ", ".join(cols)
    conn.execute(f"lock table {raw} in share row exclusive mode")
    conn.execute(f"set local maintenance_work_mem = {_literal(get_settings().load_sort_memory)}")
    raw_rows = scalar(conn, f"select reltuples::bigint from pg_class where oid = '{raw}'::regclass")
    primary_key = None
    bulk = batch_rows >= BULK_MERGE_MIN_ROWS and batch_rows > raw_rows
    if bulk:
        primary_key = _primary_key(conn, raw)
        if primary_key:
            conn.execute(f"alter table {raw} drop constraint {primary_key}")
        conn.execute(f"drop index if exists raw.{raw_batch_index_name(entity)}")
    changed = 0
    if entity.version_column:
        v = entity.version_column
        changed += conn.execute(
            f"""update {raw} r set {", ".join(f"{c} = t.{c}" for c in cols if c != entity.key)},
                    _extra = t._extra, _batch_id = %s, _loaded_at = now()
                from {typed} t
                where r.{entity.key} = t.{entity.key}
                  and (r.{v} < t.{v}
                       or (r.{v} = t.{v}
                           and row({", ".join(f"r.{c}" for c in cols)}, r._extra)::text
                               is distinct from row({", ".join(f"t.{c}" for c in cols)}, t._extra)::text))""",
            (batch_id,),
        ).rowcount
    changed += conn.execute(
        f"""insert into {raw} ({col_list}, _extra, _batch_id, _loaded_at)
            select {col_list}, _extra, %s, now() from {typed} t
            where not exists (select from {raw} r where r.{entity.key} = t.{entity.key})""",
        (batch_id,),
    ).rowcount
    if primary_key:
        conn.execute(f"alter table {raw} add constraint {primary_key} primary key ({entity.key})")
    if bulk:
        conn.execute(raw_batch_index_ddl(entity))
        conn.execute(f"analyze {raw}")
    return changed


def _adopt_as_raw(conn: psycopg.Connection, entity: Entity, typed: str, batch_id: int) -> int | None:
    """Make the batch table itself ``raw.<entity>`` when raw is empty (the first load);
    returns the rows it holds, or None when raw must be merged into the usual way.

    Merging a first load copies every row a second time and then sorts them for the
    primary key, while the batch table already holds the same rows in the same types
    under a primary key on the same column. Adopting it costs the two bookkeeping
    columns (constant defaults: no rewrite), raw's other indexes (built from their own
    definitions) and an ``analyze``. It is done only when nothing would notice the swap:
    raw is empty and has the shape ``ddl.raw_table_ddl`` gives it, nothing depends on it
    (no view, foreign key or function: a view refers to a table, not to its name), the
    loading role owns it, and it has no grants, triggers, policies, rules, comments,
    inheritance, publications or extended statistics. Otherwise the reason is logged
    and the batch is merged.
    """
    raw = f"raw.{entity.name}"
    why_not = _not_adoptable(conn, raw, typed)
    if why_not is None:
        conn.execute(f"lock table {raw} in access exclusive mode")
        why_not = _not_adoptable(conn, raw, typed)  # again, now that nobody can write to it
    if why_not is not None:
        log.info("%s: merging batch %d into %s (%s)", entity.name, batch_id, raw, why_not)
        return None
    primary_key, batch_key = _primary_key(conn, raw), _primary_key(conn, typed)
    reloptions: list[str] | None = scalar(
        conn, "select reloptions from pg_class where oid = %s::regclass", (raw,)
    )
    indexes = [
        row[0]
        for row in conn.execute(
            "select pg_get_indexdef(indexrelid) from pg_index where indrelid = %s::regclass and not indisprimary",
            (raw,),
        )
    ]
    conn.execute(
        f"""alter table {typed}
            add column _batch_id bigint not null default {int(batch_id)},
            add column _loaded_at timestamptz not null default now()"""
    )
    conn.execute(
        f"alter table {typed} alter column _batch_id drop default, alter column _loaded_at drop default,"
        " reset (autovacuum_enabled)"
    )
    if reloptions:  # raw's own storage settings (a fillfactor, autovacuum thresholds) stay
        conn.execute(f"alter table {typed} set ({', '.join(reloptions)})")
    conn.execute(f"drop table {raw}")
    conn.execute(f"alter table {typed} set schema raw")
    conn.execute(f"alter table raw.{typed.split('.', 1)[1]} rename to {entity.name}")
    if primary_key and primary_key != batch_key:
        conn.execute(f"alter table {raw} rename constraint {batch_key} to {primary_key}")
    for definition in indexes:
        conn.execute(definition)
    conn.execute(f"analyze {raw}")
    rows: int = scalar(conn, f"select count(*) from {raw}")
    log.info(
        "%s: raw.%s was empty and adopted batch %d whole (%d rows)", entity.name, entity.name, batch_id, rows
    )
    return rows


def _not_adoptable(conn: psycopg.Connection, raw: str, typed: str) -> str | None:
    """Why ``typed`` cannot simply become ``raw`` (see ``_adopt_as_raw``), or None."""
    shape = """select coalesce(array_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                         || ' collation ' || a.attcollation
                                         || case when a.attnotnull then ' not null' else '' end
                                         || case when a.atthasdef then ' default' else '' end
                                         order by a.attnum), '{}')
               from pg_attribute a where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped"""
    adopted_shape = [*scalar(conn, shape, (typed,)), "_batch_id bigint collation 0 not null"]
    adopted_shape.append("_loaded_at timestamp with time zone collation 0 not null")
    if scalar(conn, shape, (raw,)) != adopted_shape:
        return "its columns differ from the batch's"
    if scalar(conn, f"select exists (select from {raw})"):
        return "it holds rows"
    # each reason and the condition of it, over raw (c) and the batch table (b)
    reasons = {
        "it is not a plain logged table": "(c.relpersistence, c.relkind) <> ('p', 'r')",
        "it has grants": "c.relacl is not null",
        "it has triggers": "c.relhastriggers",
        "it has row security": "c.relrowsecurity",
        "it has rules": "c.relhasrules",
        "it is part of an inheritance or partitioning tree": """c.relhassubclass or c.relispartition
            or exists (select from pg_inherits where inhrelid = c.oid)""",
        "objects depend on it": """exists (select from pg_depend d where d.refclassid = 'pg_class'::regclass
                                           and d.refobjid = c.oid and d.deptype = 'n')
            or exists (select from pg_depend d where d.refclassid = 'pg_type'::regclass
                       and d.refobjid = c.reltype and d.deptype = 'n')""",
        "it has comments": "exists (select from pg_description where objoid = c.oid and classoid = 'pg_class'::regclass)",
        "it lives in another tablespace": "c.reltablespace <> b.reltablespace",
        "it has constraints beyond its primary key": """exists (select from pg_constraint
                                                              where conrelid = c.oid and contype not in ('p', 'n'))""",
        "the batch table is not logged": "b.relpersistence <> 'p'",
        "another role owns it": "c.relowner <> b.relowner",
        "it is published for replication": """exists (select from pg_publication_rel where prrelid = c.oid)
            or exists (select from pg_publication where puballtables)""",
        "it has extended statistics": "exists (select from pg_statistic_ext where stxrelid = c.oid)",
    }
    found = conn.execute(
        f"""select {", ".join(f"coalesce({condition}, false)" for condition in reasons.values())}
            from pg_class c, pg_class b where c.oid = %s::regclass and b.oid = %s::regclass""",
        (raw, typed),
    ).fetchone()
    assert found is not None
    first = next((reason for reason, holds in zip(reasons, found, strict=True) if holds), None)
    if first is None and _primary_key(conn, typed) is None:
        return "the batch table has no primary key"
    return first


def _primary_key(conn: psycopg.Connection, table: str) -> str | None:
    """The name of ``table``'s primary key constraint, if it has one."""
    name: str | None = scalar(
        conn, "select conname from pg_constraint where conrelid = %s::regclass and contype = 'p'", (table,)
    )
    return name


def reject_batch(conn: psycopg.Connection, batch_id: int, error: str) -> None:
    """Mark a batch that failed its gate; its landing tables stay for inspection."""
    conn.execute(
        "update ops.load_batches set status = 'rejected', error = %s, finished_at = clock_timestamp() where batch_id = %s",
        (error[:4000], batch_id),
    )
    conn.commit()
