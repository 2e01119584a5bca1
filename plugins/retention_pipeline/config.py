"""Settings shared by the DAGs, the CLI and the tests: one place, read from ``RETENTION_*``.

Defaults make the demo work with nothing set. Nothing here opens a connection, so the
module is safe to import at DAG parse time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(os.environ.get("RETENTION_PROJECT_ROOT", Path(__file__).resolve().parents[2]))


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _env_list(name: str, default: str = "") -> tuple[str, ...]:
    raw = _env(name, default)
    return tuple(part.strip() for part in raw.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    """Everything an operator can configure; see the README's configuration table."""

    home: Path
    # Unset means the embedded PostgreSQL under ``home/pgdata``.
    warehouse_url: str | None
    landing_dir: Path
    outbox_dir: Path
    dbt_project_dir: Path
    expectations_dir: Path
    timezone: str
    digest_recipients: tuple[str, ...]
    digest_sender: str
    digest_language: str
    smtp_conn_id: str
    call_list_capacity: int
    future_tolerance_minutes: int
    max_source_lag_hours: int

    @property
    def embedded_data_dir(self) -> Path:
        return self.home / "pgdata"


def get_settings() -> Settings:
    home = Path(_env("RETENTION_HOME", str(PROJECT_ROOT / ".retention")))
    return Settings(
        home=home,
        warehouse_url=os.environ.get("RETENTION_WAREHOUSE_URL") or None,
        landing_dir=Path(_env("RETENTION_LANDING_DIR", str(home / "landing"))),
        outbox_dir=Path(_env("RETENTION_OUTBOX_DIR", str(home / "outbox"))),
        dbt_project_dir=Path(_env("RETENTION_DBT_PROJECT_DIR", str(PROJECT_ROOT / "dbt_project"))),
        expectations_dir=Path(_env("RETENTION_EXPECTATIONS_DIR", str(PROJECT_ROOT / "expectations"))),
        timezone=_env("RETENTION_TIMEZONE", "UTC"),
        digest_recipients=_env_list("RETENTION_DIGEST_RECIPIENTS", "everyone@example.com"),
        digest_sender=_env("RETENTION_DIGEST_SENDER", "retention-digest@example.com"),
        digest_language=_env("RETENTION_DIGEST_LANGUAGE", "en"),
        smtp_conn_id=_env("RETENTION_SMTP_CONN_ID", "smtp_default"),
        call_list_capacity=int(_env("RETENTION_CALL_LIST_CAPACITY", "200")),
        future_tolerance_minutes=int(_env("RETENTION_FUTURE_TOLERANCE_MINUTES", "10")),
        max_source_lag_hours=int(_env("RETENTION_MAX_SOURCE_LAG_HOURS", "48")),
    )
