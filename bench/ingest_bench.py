"""Ingest benchmark: the loader path against a bare COPY and pandas ``to_sql``.

    .venv/bin/python bench/ingest_bench.py            # BENCH_ROWS=2000000 by default
    BENCH_ROWS=500000 BENCH_OUT=/tmp/b.json make bench

It writes one orders CSV (the landing contract's columns, generated with numpy), then
loads it five ways, each into a fresh scratch database on the configured warehouse
server (``RETENTION_WAREHOUSE_URL``, else the embedded one):

* ``loader``: ``loading.land_files`` + ``publish_batch`` on the clean file. Every row is
  clean, so it takes the typed path: COPY (two parallel sessions) straight into the
  raw types, the hard rules and the one-version-per-key check on typed values, then
  the merge into ``raw.orders`` (primary key rebuilt after, as raw starts empty);
* ``loader_checked``: the same file plus two bad rows, so the batch goes the careful
  way: COPY into text columns, every rule checked row by row, quarantine, merge;
* ``copy``: one ``COPY ... FROM STDIN`` of the file into a typed table without a key
  (the floor: what the server can take);
* ``copy_keyed``: the same into a table shaped like ``raw.orders`` (same types, same
  primary key): what ``COPY raw.orders FROM`` would cost without any checks;
* ``to_sql``: ``pandas.read_csv`` + ``DataFrame.to_sql`` at its defaults (what a quick
  script would do).

Each way runs in its own process, so its peak resident memory (``ru_maxrss``) is its
own. The loader is also run under ``tracemalloc`` in a second process to show that
Python holds only one COPY block at a time. Results: printed, and written as JSON to
``BENCH_OUT`` (default ``bench_results.json``).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

HEADER = ["order_id", "customer_id", "ordered_at", "status", "amount", "currency", "updated_at"]
INTERVAL_END = datetime(2026, 11, 23, tzinfo=UTC)


def generate_orders(path: Path, rows: int, seed: int = 7) -> None:
    """A realistic orders export: ~rows/4 customers, two years of timestamps, 3 statuses."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    end = int(INTERVAL_END.timestamp()) - 3600
    ordered = end - rng.integers(0, 2 * 365 * 86400, rows)
    updated = np.minimum(ordered + rng.integers(0, 3 * 86400, rows) * (rng.random(rows) < 0.1), end)
    frame = pd.DataFrame(
        {
            "order_id": np.char.add("O", np.arange(rows).astype(str)),
            "customer_id": np.char.add("C", rng.integers(0, max(rows // 4, 1), rows).astype(str)),
            "ordered_at": pd.to_datetime(ordered, unit="s", utc=True).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
            "status": rng.choice(["completed", "cancelled", "refunded"], rows, p=[0.9, 0.06, 0.04]),
            "amount": np.round(rng.gamma(2.0, 30.0, rows), 2),
            "currency": "EUR",
            "updated_at": pd.to_datetime(updated, unit="s", utc=True).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        }
    )
    frame.to_csv(path, index=False)


# --- one method per process ------------------------------------------------------------


def _run_loader(csv_path: Path) -> dict[str, Any]:
    from retention_pipeline import loading, warehouse

    warehouse.bootstrap()
    landing = csv_path.parent.parent  # <landing>/orders/orders_bench.csv
    with warehouse.connect() as conn:
        t0 = time.perf_counter()
        batch = loading.land_files(conn, "orders", landing, INTERVAL_END - timedelta(days=1), INTERVAL_END)
        t1 = time.perf_counter()
        assert batch is not None
        loading.publish_batch(conn, batch.batch_id)
        t2 = time.perf_counter()
        loaded = warehouse.scalar(conn, "select count(*) from raw.orders")
    return {"seconds": t2 - t0, "land_seconds": t1 - t0, "publish_seconds": t2 - t1, "rows_in_table": loaded}


def _run_loader_checked(csv_path: Path) -> dict[str, Any]:
    """The same file with a few bad rows appended: every row goes the row-by-row way."""
    checked = csv_path.parent.parent / "checked" / "orders" / csv_path.name
    checked.parent.mkdir(parents=True, exist_ok=True)
    with checked.open("wb") as out, csv_path.open("rb") as src:
        for block in iter(lambda: src.read(1 << 20), b""):
            out.write(block)
        out.write(b"OX1,C1,2026-11-20T10:00:00+00:00,completed,abc,EUR,2026-11-20T10:00:00+00:00\n")
        out.write(b"OX2,C1,2026-11-20T10:00:00+00:00,lost,1.00,EUR,2026-11-20T10:00:00+00:00\n")
    try:
        result = _run_loader(checked)
    finally:
        checked.unlink()
    result["rows_in_table"] += 2  # the two quarantined rows: same row count as the others
    return result


def _run_copy(csv_path: Path, keyed: bool = False) -> dict[str, Any]:
    from retention_pipeline import warehouse

    with warehouse.connect() as conn:
        if keyed:  # what COPY straight into raw.orders would cost: same types, same key
            warehouse.bootstrap()
            conn.execute("create table bench_copy (like raw.orders including all)")
            conn.execute(
                "alter table bench_copy alter _batch_id set default 0, alter _loaded_at set default now()"
            )
        else:
            conn.execute(
                """create table bench_copy (order_id text, customer_id text, ordered_at timestamptz,
                   status text, amount numeric(14,2), currency text, updated_at timestamptz)"""
            )
        conn.commit()
        t0 = time.perf_counter()
        with (
            conn.cursor().copy(
                f"copy bench_copy ({', '.join(HEADER)}) from stdin with (format csv, header true)"
            ) as copy,
            csv_path.open("rb") as fh,
        ):
            for block in iter(lambda: fh.read(1 << 20), b""):
                copy.write(block)
        conn.commit()
        seconds = time.perf_counter() - t0
        loaded = warehouse.scalar(conn, "select count(*) from bench_copy")
    return {"seconds": seconds, "rows_in_table": loaded}


def _run_to_sql(csv_path: Path) -> dict[str, Any]:
    import pandas as pd

    from retention_pipeline import warehouse

    engine = warehouse.engine()
    t0 = time.perf_counter()
    frame = pd.read_csv(csv_path)
    t1 = time.perf_counter()
    frame.to_sql("bench_to_sql", engine)  # the defaults: one INSERT per row, executemany
    t2 = time.perf_counter()
    with warehouse.connect() as conn:
        loaded = warehouse.scalar(conn, "select count(*) from bench_to_sql")
    engine.dispose()
    return {
        "seconds": t2 - t0,
        "read_csv_seconds": t1 - t0,
        "to_sql_seconds": t2 - t1,
        "rows_in_table": loaded,
    }


METHODS = {
    "loader": _run_loader,
    "loader_checked": _run_loader_checked,
    "copy": _run_copy,
    "copy_keyed": lambda path: _run_copy(path, keyed=True),
    "to_sql": _run_to_sql,
}


def _peak_rss_mb() -> float:
    """This process's own high-water mark. ru_maxrss is not: Linux carries the forking
    parent's peak across exec, so every child would report the driver's memory."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(method: str, csv_path: Path, traced: bool) -> None:
    if traced:
        import tracemalloc

        tracemalloc.start()
    result = METHODS[method](csv_path)
    if traced:
        import tracemalloc

        result["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    result["peak_rss_mb"] = _peak_rss_mb()
    print("RESULT " + json.dumps(result))


# --- the driver -------------------------------------------------------------------------


def _database(admin_url: str | None) -> tuple[str, Any]:
    import psycopg

    from retention_pipeline import warehouse

    address = warehouse.parse_url(admin_url) if admin_url else warehouse.address()
    name = f"retention_bench_{uuid.uuid4().hex[:8]}"
    admin = {**address.libpq_kwargs(), "dbname": "postgres"}
    with psycopg.connect(**admin, autocommit=True) as conn:  # type: ignore[arg-type]
        warehouse.create_database(conn, name)
    return name, address.__class__(**{**address.__dict__, "database": name})


def _drop(address: Any) -> None:
    import psycopg
    from psycopg import sql

    admin = {**address.libpq_kwargs(), "dbname": "postgres"}
    with psycopg.connect(**admin, autocommit=True) as conn:  # type: ignore[arg-type]
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(address.database))
        )


def _spawn(method: str, csv_path: Path, url: str, traced: bool = False) -> dict[str, Any]:
    env = {**os.environ, "RETENTION_WAREHOUSE_URL": url}
    args = [sys.executable, __file__, "--child", method, str(csv_path)] + (["--traced"] if traced else [])
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{method} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    return result


def main() -> None:
    rows = int(os.environ.get("BENCH_ROWS", "2000000"))
    out = Path(os.environ.get("BENCH_OUT", "bench_results.json"))
    methods = os.environ.get("BENCH_METHODS", "loader,loader_checked,copy,copy_keyed,to_sql").split(",")
    work = Path(tempfile.mkdtemp(prefix="retention-bench-"))
    csv_path = work / "orders" / "orders_bench.csv"
    csv_path.parent.mkdir()
    t0 = time.perf_counter()
    generate_orders(csv_path, rows)
    print(
        f"generated {rows:,} orders ({csv_path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s"
    )

    results: dict[str, Any] = {}
    address = None
    try:
        for method in methods:
            # a database of its own for each way: none pays for another's leftovers
            if address is not None:
                _drop(address)
            _, address = _database(os.environ.get("BENCH_ADMIN_URL"))
            results[method] = _spawn(method, csv_path, address.sqlalchemy_url("psycopg"))
            results[method]["rows_per_second"] = rows / results[method]["seconds"]
            print(
                f"{method:>14}: {results[method]['seconds']:7.2f} s  {results[method]['rows_per_second']:>12,.0f} rows/s  "
                f"peak RSS {results[method]['peak_rss_mb']:7.1f} MiB"
            )
        if "loader" in methods:
            _drop(address)
            _, address = _database(os.environ.get("BENCH_ADMIN_URL"))
            traced = _spawn("loader", csv_path, address.sqlalchemy_url("psycopg"), traced=True)
            results["loader"]["tracemalloc_peak_mb"] = traced["tracemalloc_peak_mb"]
            print(f"  loader under tracemalloc: Python peak {traced['tracemalloc_peak_mb']:.1f} MiB")
    finally:
        if address is not None:
            _drop(address)
    for base in ("copy", "copy_keyed", "to_sql"):
        if base not in results:
            continue
        for method in results:
            results[method][f"ratio_to_{base}"] = (
                results[method]["rows_per_second"] / results[base]["rows_per_second"]
            )
        print(
            f"ratios to {base}: "
            + ", ".join(f"{m} {r[f'ratio_to_{base}']:.3f}x" for m, r in results.items() if m != base)
        )
    report = {
        "rows": rows,
        "csv_bytes": csv_path.stat().st_size,
        "server": "RETENTION_WAREHOUSE_URL" if os.environ.get("RETENTION_WAREHOUSE_URL") else "embedded",
        "cpus": os.cpu_count(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "results": results,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    csv_path.unlink()


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--child":
        child(sys.argv[2], Path(sys.argv[3]), "--traced" in sys.argv)
    else:
        main()
