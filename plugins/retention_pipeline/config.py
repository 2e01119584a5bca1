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
    bi_role: str
    bi_password: str
    digest_deadline_hour: int
    # Week-over-week bounds of the drift checks (publish.drift_check): beyond them is an
    # error that stops the run; beyond drift_warning_ratio of them, a warning.
    max_rowcount_change: float = 0.5
    max_revenue_change: float = 1.0
    max_stage_share_shift_pp: float = 15.0
    drift_warning_ratio: float = 0.5
    # marts smaller than this are too small for a relative row-count change to mean much
    drift_min_rows: int = 100
    # Loader (loading.py): parallel COPY sessions for a large CSV file, and the per-session
    # sort memory for a batch's unique index and raw's rebuilt primary key
    load_copy_streams: int = 2
    load_sort_memory: str = "256MB"
    alert_recipients: tuple[str, ...] = ()
    alert_webhook_url: str | None = None
    # entity -> source system (sources/config.py); None: every entity from the landing folder
    sources_file: Path | None = None
    # Outreach (retention_pipeline/outreach): where call lists go and who is left out.
    outreach_sinks: tuple[str, ...] = ("csv", "xlsx")
    outreach_dry_run: bool = False
    suppression_days: int = 28
    holdout_share: float = 0.1
    script_variants: tuple[str, ...] = ("A", "B")
    outreach_webhook_conn_id: str = "outreach_webhook"
    hubspot_conn_id: str = "hubspot_default"
    bitrix24_conn_id: str = "bitrix24_default"
    outreach_batch_size: int = 100
    outreach_max_attempts: int = 5
    outreach_timeout_seconds: float = 10.0
    outreach_max_backoff_seconds: float = 60.0
    # The digest: the team's key result for the weekly churn rate (a fraction, e.g. 0.02;
    # unset = no target shown) and the currency its money figures are in.
    churn_rate_target: float | None = None
    currency: str = "EUR"
    # The Data Docs index lists this many of the newest validations (quality.py)
    data_docs_index_limit: int = 500

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
        sources_file=Path(_env("RETENTION_SOURCES_FILE", "")) if _env("RETENTION_SOURCES_FILE", "") else None,
        churn_rate_target=float(os.environ["RETENTION_CHURN_RATE_TARGET"])
        if os.environ.get("RETENTION_CHURN_RATE_TARGET", "").strip()
        else None,
        currency=_env("RETENTION_CURRENCY", "EUR").upper(),
        data_docs_index_limit=max(1, int(_env("RETENTION_DATA_DOCS_INDEX_LIMIT", "500"))),
        bi_role=_env("RETENTION_BI_ROLE", "retention_bi"),
        digest_deadline_hour=int(_env("RETENTION_DIGEST_DEADLINE_HOUR", "9")),
        bi_password=os.environ.get("RETENTION_BI_PASSWORD", ""),
        max_rowcount_change=float(_env("RETENTION_MAX_ROWCOUNT_CHANGE", "0.5")),
        max_revenue_change=float(_env("RETENTION_MAX_REVENUE_CHANGE", "1.0")),
        max_stage_share_shift_pp=float(_env("RETENTION_MAX_STAGE_SHARE_SHIFT_PP", "15")),
        drift_warning_ratio=float(_env("RETENTION_DRIFT_WARNING_RATIO", "0.5")),
        drift_min_rows=int(_env("RETENTION_DRIFT_MIN_ROWS", "100")),
        load_copy_streams=max(1, int(_env("RETENTION_LOAD_COPY_STREAMS", "2"))),
        load_sort_memory=_env("RETENTION_LOAD_SORT_MEMORY", "256MB"),
        alert_recipients=_env_list("RETENTION_ALERT_RECIPIENTS"),
        alert_webhook_url=os.environ.get("RETENTION_ALERT_WEBHOOK_URL", "").strip() or None,
        outreach_sinks=_env_list("RETENTION_OUTREACH_SINKS", "csv,xlsx"),
        outreach_dry_run=_env("RETENTION_OUTREACH_DRY_RUN", "false").lower() in ("1", "true", "yes"),
        suppression_days=int(_env("RETENTION_SUPPRESSION_DAYS", "28")),
        holdout_share=float(_env("RETENTION_HOLDOUT_SHARE", "0.1")),
        script_variants=_env_list("RETENTION_SCRIPT_VARIANTS", "A,B"),
        outreach_webhook_conn_id=_env("RETENTION_OUTREACH_WEBHOOK_CONN_ID", "outreach_webhook"),
        hubspot_conn_id=_env("RETENTION_HUBSPOT_CONN_ID", "hubspot_default"),
        bitrix24_conn_id=_env("RETENTION_BITRIX24_CONN_ID", "bitrix24_default"),
        outreach_batch_size=int(_env("RETENTION_OUTREACH_BATCH_SIZE", "100")),
        outreach_max_attempts=int(_env("RETENTION_OUTREACH_MAX_ATTEMPTS", "5")),
        outreach_timeout_seconds=float(_env("RETENTION_OUTREACH_TIMEOUT_SECONDS", "10")),
        outreach_max_backoff_seconds=float(_env("RETENTION_OUTREACH_MAX_BACKOFF_SECONDS", "60")),
    )
