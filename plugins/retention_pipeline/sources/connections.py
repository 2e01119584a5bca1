"""Airflow connections, looked up only when a task runs.

Credentials live in ``AIRFLOW_CONN_<ID>`` variables or a secrets backend, never in the
sources file or the repository. The lookup is deferred to task run time because a DAG
file must not touch a secrets backend while it is parsed.
"""

from __future__ import annotations

from typing import Any

# Airflow connection type -> the SQLAlchemy driver we install (SQLAlchemy 2.1 would pick
# psycopg for a bare postgresql:// and mysqlclient, not installed, for mysql://)
SQLALCHEMY_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "mssql": "mssql+pymssql",
    "sqlite": "sqlite",
}


def get_connection(conn_id: str) -> Any:
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id)


def sqlalchemy_url(conn: Any, driver: str | None = None) -> str:
    """A SQLAlchemy URL for an Airflow connection (``driver`` overrides the default)."""
    from sqlalchemy.engine import URL

    conn_type = str(conn.conn_type or "").lower()
    drivername = driver or SQLALCHEMY_DRIVERS.get(conn_type, conn_type)
    if drivername == "sqlite":
        return f"sqlite:///{conn.host or conn.schema}"
    url = URL.create(
        drivername,
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or None,
        port=conn.port or None,
        database=conn.schema or None,
        # libpq takes its options (sslmode, a unix-socket host=/run/postgresql) as
        # query parameters; other drivers would reject unknown keyword arguments
        query={k: str(v) for k, v in _extras(conn).items()} if drivername.startswith("postgresql") else {},
    )
    return url.render_as_string(hide_password=False)


def _extras(conn: Any) -> dict[str, Any]:
    extras = getattr(conn, "extra_dejson", None) or {}
    return dict(extras) if isinstance(extras, dict) else {}
