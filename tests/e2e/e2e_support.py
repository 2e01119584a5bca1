"""Helpers of the end-to-end tests (fixtures live in conftest.py)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import psycopg


def smtp_conn_uri(port: int) -> str:
    return f"smtp://127.0.0.1:{port}?disable_tls=true&disable_ssl=true"


def run_retention(env: dict[str, str], *args: str, timeout: int = 1200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retention_pipeline.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def query(address: Any, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(**address.libpq_kwargs()) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]
