"""Airflow's distributed shape, for real: scheduler, dag-processor, api-server and a Celery
worker as separate processes (CeleryExecutor, PostgreSQL metadata), the weekly DAG
triggered through the REST API and run to success on the worker.

The broker is the local Redis service when one answers on 127.0.0.1:6379 (CI, and the
shape of docker-compose.yml); a machine without Redis uses kombu's SQLAlchemy transport
on the same PostgreSQL, so the test still runs every component instead of skipping.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from retention_pipeline import loading, warehouse
from retention_pipeline.entities import ENTITIES
from retention_pipeline.sample_data import generate

pytestmark = pytest.mark.celery

ROOT = Path(__file__).resolve().parents[2]
WEEK_START = datetime(2026, 11, 16, tzinfo=UTC)
WEEK_END = WEEK_START + timedelta(days=7)


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _meta_url(address, dbname: str, driver: str = "psycopg2") -> str:
    meta = warehouse.WarehouseAddress(address.host, address.port, address.user, address.password, dbname)
    return meta.sqlalchemy_url(driver)


class Api:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.token: str | None = None

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")


def _wait(what: str, check, timeout: float, procs: dict[str, subprocess.Popen], logs: Path):
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise AssertionError(
                    f"{name} exited ({proc.returncode}):\n{(logs / f'{name}.log').read_text()[-3000:]}"
                )
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # the server is not up yet
            last_error = exc
        time.sleep(2)
    tails = "\n".join(f"--- {n}\n{(logs / f'{n}.log').read_text()[-1500:]}" for n in procs)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_error})\n{tails}")


@pytest.fixture
def loaded_warehouse(warehouse_db, tmp_path):
    """The warehouse with one ISO week of sample data, loaded through the real loader."""
    landing = tmp_path / "landing"
    generate(landing, end=date(2026, 11, 23), seed=3, customers=300)
    with warehouse.connect() as conn:
        for entity in ENTITIES:
            batch = loading.land_files(conn, entity, landing, WEEK_START, WEEK_END)
            if batch:
                loading.publish_batch(conn, batch.batch_id)
    return warehouse_db


def test_weekly_dag_runs_on_a_celery_worker_triggered_through_the_rest_api(
    loaded_warehouse, tmp_path, free_port
):
    address = loaded_warehouse
    meta_db = f"{address.database}_airflow"
    admin = {**address.libpq_kwargs(), "dbname": "postgres"}
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(meta_db)))
    api_port = free_port()
    broker = "redis://127.0.0.1:6379/7" if _redis_answers() else "sqla+" + _meta_url(address, meta_db)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _meta_url(address, meta_db),
        # psycopg 3 speaks asyncio too: no asyncpg needed for Airflow's async engine
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": _meta_url(address, meta_db, "psycopg"),
        "AIRFLOW__CELERY__BROKER_URL": broker,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + _meta_url(address, meta_db),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        # only the run the test triggers: unpausing would otherwise start the latest
        # scheduled interval first (catchup off), whose sources are not fresh, and with
        # max_active_runs=1 the triggered run waited behind its retries (5+ minutes)
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "RETENTION_DIGEST_RECIPIENTS": "all@company.test",
    }
    airflow = str(Path(sys.executable).parent / "airflow")
    migrated = subprocess.run(
        [airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300
    )
    assert migrated.returncode == 0, migrated.stdout[-2000:] + migrated.stderr[-3000:]

    logs = tmp_path / "logs"
    logs.mkdir()
    commands = {
        "api-server": [airflow, "api-server", "--port", str(api_port), "--host", "127.0.0.1"],
        "scheduler": [airflow, "scheduler"],
        "dag-processor": [airflow, "dag-processor"],
        "celery-worker": [airflow, "celery", "worker", "--concurrency", "2"],
    }
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name, cmd in commands.items():
            log = (logs / f"{name}.log").open("w")
            procs[name] = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        api = Api(api_port)
        api.token = _wait(
            "the API's token endpoint",
            lambda: api.call("GET", "/auth/token")["access_token"],
            180,
            procs,
            logs,
        )
        _wait(
            "the DAG to be parsed",
            lambda: api.call("GET", "/api/v2/dags/retention_weekly")["dag_id"],
            240,
            procs,
            logs,
        )
        api.call("PATCH", "/api/v2/dags/retention_weekly", {"is_paused": False})
        run = api.call(
            "POST",
            "/api/v2/dags/retention_weekly/dagRuns",
            {
                "dag_run_id": "celery_scaleout_2026-W47",
                "logical_date": WEEK_START.isoformat(),
                "data_interval_start": WEEK_START.isoformat(),
                "data_interval_end": WEEK_END.isoformat(),
            },
        )
        run_path = f"/api/v2/dags/retention_weekly/dagRuns/{run['dag_run_id']}"
        state = _wait(
            "the weekly run to finish",
            lambda: (s := api.call("GET", run_path)["state"]) in ("success", "failed") and s,
            900,
            procs,
            logs,
        )
        runs = api.call("GET", "/api/v2/dags/retention_weekly/dagRuns")["dag_runs"]
        assert [r["dag_run_id"] for r in runs] == [run["dag_run_id"]]
        tis = api.call("GET", run_path + "/taskInstances?limit=100")["task_instances"]
        failed = [t["task_id"] for t in tis if t["state"] != "success"]
        assert state == "success", (
            f"failed tasks: {failed}\n{(logs / 'celery-worker.log').read_text()[-3000:]}"
        )
        # the tasks really ran through Celery: the worker received every one of them
        worker_log = (logs / "celery-worker.log").read_text()
        assert worker_log.count(" received") >= len(tis), worker_log[-3000:]
        with psycopg.connect(**address.libpq_kwargs()) as conn:
            week = conn.execute(
                "select iso_week from marts.rpt_weekly_kpis order by week_start desc limit 1"
            ).fetchone()
            pushed = conn.execute(
                "select count(*) from ops.outreach_pushes where iso_week = '2026-W47'"
            ).fetchone()
        assert week == ("2026-W47",)
        assert pushed[0] > 0
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        with psycopg.connect(**admin, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(meta_db)))
