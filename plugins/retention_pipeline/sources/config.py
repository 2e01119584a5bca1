"""Which system each entity comes from in this deployment: the sources file.

One deployment takes orders from a shop database, another from nightly CSV exports; the
code is the same, only ``RETENTION_SOURCES_FILE`` differs. Without the file every entity
comes from the landing folder, which is what the demo and the sample data use.

```yaml
orders:
  kind: sql                # files | sql | zendesk
  conn_id: shop_db         # an Airflow connection (AIRFLOW_CONN_SHOP_DB=mysql://...)
  table: shop_orders       # or query: "select ... from ..."
  overlap_minutes: 30      # re-read this much before the watermark (late commits, clock skew)
  mapping:                 # source column -> contract column
    id: order_id
    total: amount
tickets:
  kind: zendesk
  conn_id: zendesk         # host https://<subdomain>.zendesk.com, login = agent email, password = API token
```

Secrets never appear here: only connection ids, resolved inside the task.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retention_pipeline.entities import ENTITIES

KINDS = ("files", "sql", "zendesk")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


class SourceConfigError(ValueError):
    """The sources file is wrong; raised when it is read, before anything is extracted."""


@dataclass(frozen=True)
class SourceSpec:
    entity: str
    kind: str = "files"
    conn_id: str | None = None
    # source column -> contract column; unmapped columns keep their names (and a column
    # the contract does not know lands in raw.<entity>._extra, as with files)
    mapping: dict[str, str] = field(default_factory=dict)
    table: str | None = None
    query: str | None = None
    overlap_minutes: int = 0
    chunk_rows: int = 50_000
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def source_key(self) -> str:
        """Names the watermark: a new table or connection starts from scratch."""
        what = self.table or ("query" if self.query else self.kind)
        return f"{self.kind}:{self.conn_id or '-'}:{what}"

    def contract_name(self, source_column: str) -> str:
        return self.mapping.get(source_column, source_column)

    def source_name(self, contract_column: str) -> str:
        for src, dst in self.mapping.items():
            if dst == contract_column:
                return src
        return contract_column


def _spec(entity: str, raw: Any) -> SourceSpec:
    if entity not in ENTITIES:
        raise SourceConfigError(f"sources file: unknown entity {entity!r} (known: {', '.join(ENTITIES)})")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SourceConfigError(f"sources file: {entity} must be a mapping")
    raw = dict(raw)
    kind = str(raw.pop("kind", "files"))
    if kind not in KINDS:
        raise SourceConfigError(f"sources file: {entity}.kind {kind!r} is not one of {', '.join(KINDS)}")
    conn_id = raw.pop("conn_id", None)
    if kind != "files" and not conn_id:
        raise SourceConfigError(f"sources file: {entity} ({kind}) needs a conn_id")
    mapping = {str(k): str(v) for k, v in (raw.pop("mapping", None) or {}).items()}
    contract = set(ENTITIES[entity].column_names)
    for src, dst in mapping.items():
        if dst not in contract:
            raise SourceConfigError(
                f"sources file: {entity}.mapping maps {src!r} to {dst!r}, not a contract column"
            )
    table, query = raw.pop("table", None), raw.pop("query", None)
    if kind == "sql":
        if bool(table) == bool(query):
            raise SourceConfigError(f"sources file: {entity} (sql) needs exactly one of table or query")
        if table and not _IDENT.fullmatch(str(table)):
            raise SourceConfigError(
                f"sources file: {entity}.table {table!r} is not a plain (schema.)table name"
            )
    return SourceSpec(
        entity=entity,
        kind=kind,
        conn_id=str(conn_id) if conn_id else None,
        mapping=mapping,
        table=str(table) if table else None,
        query=str(query) if query else None,
        overlap_minutes=int(raw.pop("overlap_minutes", 0)),
        chunk_rows=int(raw.pop("chunk_rows", 50_000)),
        options=raw,
    )


def load_sources(path: Path | None) -> dict[str, SourceSpec]:
    """Every entity's source; entities the file does not name come from the landing folder."""
    specs = {name: SourceSpec(entity=name) for name in ENTITIES}
    if path is None:
        return specs
    import yaml  # type: ignore[import-untyped,unused-ignore]

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise SourceConfigError(f"cannot read the sources file {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise SourceConfigError(f"{path}: the top level must map entity -> source")
    for entity, raw in doc.items():
        specs[str(entity)] = _spec(str(entity), raw)
    return specs
