"""Outreach tool credentials, from Airflow connections (``AIRFLOW_CONN_<ID>``).

Read when a task runs, never at DAG parse time, and never logged. The connection's
URI or JSON form is parsed by Airflow's own ``Connection`` class, so an operator writes
them exactly as the Airflow docs say, e.g.
``AIRFLOW_CONN_HUBSPOT_DEFAULT='https://:pat-na1-...@api.hubapi.com'`` or
``AIRFLOW_CONN_BITRIX24_DEFAULT='https://portal.bitrix24.com/rest/1/webhooksecret'``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any


class MissingConnection(RuntimeError):
    pass


@dataclass(frozen=True)
class ToolConnection:
    conn_id: str
    base_url: str  # scheme://host[:port][/path], no trailing slash
    login: str
    password: str = field(repr=False)
    extra: dict[str, Any] = field(default_factory=dict)


def get_connection(conn_id: str, default_host: str | None = None) -> ToolConnection:
    """The connection named ``conn_id`` from the environment (Airflow's env-var secrets
    backend format). ``default_host`` fills a connection that only carries a token."""
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}", "").strip()
    if not raw:
        raise MissingConnection(
            f"no Airflow connection {conn_id!r}: set AIRFLOW_CONN_{conn_id.upper()} (URI or JSON)"
        )
    from airflow.models.connection import Connection

    conn = (
        Connection.from_json(raw, conn_id=conn_id)
        if raw.startswith("{")
        else Connection(conn_id=conn_id, uri=raw)
    )
    host = conn.host or default_host or ""
    if not host:
        raise MissingConnection(f"connection {conn_id!r} has no host")
    if "://" in host:
        base = host.rstrip("/")
    else:
        scheme = conn.conn_type if conn.conn_type in ("http", "https") else "https"
        base = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
        if conn.schema:
            base += "/" + conn.schema.strip("/")
    return ToolConnection(
        conn_id=conn_id,
        base_url=base.rstrip("/"),
        login=conn.login or "",
        password=conn.password or "",
        extra=dict(conn.extra_dejson),
    )
