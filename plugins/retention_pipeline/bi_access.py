"""Read-only access for BI tools: the marts, through views that mask customer contacts.

BI connects as one role (``RETENTION_BI_ROLE``) that can read the schema ``bi`` and
nothing else: not ``raw``, ``quarantine``, ``ops``, ``landing``, staging or the
``marts`` tables themselves. ``bi`` holds one view per mart; the columns dbt marks
``meta: {sensitive: true}`` are masked there (an email keeps its first letter and
domain, a phone its last two digits, anything else becomes ``***``).

The views are rebuilt after every publish of the marts: a view is bound to the table it
was created on, so after the marts are rebuilt or swapped, old views would point at old
tables (or nothing). :func:`refresh` is idempotent and runs in one transaction.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from psycopg import sql

from retention_pipeline import warehouse
from retention_pipeline.config import get_settings
from retention_pipeline.entities import ENTITIES

log = logging.getLogger(__name__)

BI_SCHEMA = "bi"
# Schemas BI must never read, whatever grants someone adds by hand later.
PRIVATE_SCHEMAS = ("raw", "quarantine", "ops", "landing", "staging", "intermediate", "marts")


def sensitive_columns(manifest_path: Path | None = None) -> dict[str, set[str]]:
    """{model name: columns marked sensitive} from dbt's manifest, plus the raw PII columns."""
    path = manifest_path or get_settings().dbt_project_dir / "target" / "manifest.json"
    by_model: dict[str, set[str]] = {}
    if path.exists():
        manifest = json.loads(path.read_text())
        for node in manifest.get("nodes", {}).values():
            if node.get("resource_type") != "model":
                continue
            cols = {
                name
                for name, col in node.get("columns", {}).items()
                if (col.get("meta") or {}).get("sensitive")
                or (col.get("config") or {}).get("meta", {}).get("sensitive")
            }
            if cols:
                by_model[node["name"]] = cols
    # whatever dbt says, contact columns of the landing contract are always masked
    by_model["*"] = {c for e in ENTITIES.values() for c in e.pii_columns}
    return by_model


def _masked(column: str) -> sql.Composable:
    col = sql.Identifier(column)
    if "email" in column:
        return sql.SQL(
            "case when {c} is null then null else left({c}, 1) || '***@' || split_part({c}, '@', 2) end"
        ).format(c=col)
    if "phone" in column:
        return sql.SQL("case when {c} is null then null else '***' || right({c}, 2) end").format(c=col)
    return sql.SQL("case when {c} is null then null else '***' end").format(c=col)


def refresh(role: str | None = None, password: str | None = None) -> list[str]:
    """(Re)create the BI role's views over every table in ``marts`` and its grants."""
    settings = get_settings()
    role = role or settings.bi_role
    password = password if password is not None else settings.bi_password
    sensitive = sensitive_columns()
    with warehouse.connect() as conn:
        conn.execute("select pg_advisory_xact_lock(hashtext('retention_bi_access'))")
        exists = conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("create role {} login").format(sql.Identifier(role)))
        if password:
            conn.execute(
                sql.SQL("alter role {} password {}").format(sql.Identifier(role), sql.Literal(password))
            )
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(BI_SCHEMA)))
        tables = conn.execute(
            "select table_name from information_schema.tables where table_schema = 'marts' order by 1"
        ).fetchall()
        views = []
        for (table,) in tables:
            columns = conn.execute(
                """select column_name from information_schema.columns
                   where table_schema = 'marts' and table_name = %s order by ordinal_position""",
                (table,),
            ).fetchall()
            masked = sensitive.get(table, set()) | sensitive["*"]
            select_list = sql.SQL(", ").join(
                sql.SQL("{} as {}").format(_masked(c), sql.Identifier(c))
                if c in masked
                else sql.Identifier(c)
                for (c,) in columns
            )
            conn.execute(
                sql.SQL("drop view if exists {}.{}").format(sql.Identifier(BI_SCHEMA), sql.Identifier(table))
            )
            conn.execute(
                sql.SQL("create view {}.{} as select {} from marts.{}").format(
                    sql.Identifier(BI_SCHEMA), sql.Identifier(table), select_list, sql.Identifier(table)
                )
            )
            views.append(f"{BI_SCHEMA}.{table}")
        # drop views of marts that no longer exist
        stale = conn.execute(
            """select table_name from information_schema.views where table_schema = %s
               and table_name not in (select table_name from information_schema.tables where table_schema = 'marts')""",
            (BI_SCHEMA,),
        ).fetchall()
        for (view,) in stale:
            conn.execute(sql.SQL("drop view {}.{}").format(sql.Identifier(BI_SCHEMA), sql.Identifier(view)))
        ident = sql.Identifier(role)
        for schema in PRIVATE_SCHEMAS:
            if conn.execute("select 1 from pg_namespace where nspname = %s", (schema,)).fetchone():
                conn.execute(sql.SQL("revoke all on schema {} from {}").format(sql.Identifier(schema), ident))
                conn.execute(
                    sql.SQL("revoke all on all tables in schema {} from {}").format(
                        sql.Identifier(schema), ident
                    )
                )
        conn.execute(sql.SQL("grant usage on schema {} to {}").format(sql.Identifier(BI_SCHEMA), ident))
        conn.execute(
            sql.SQL("grant select on all tables in schema {} to {}").format(sql.Identifier(BI_SCHEMA), ident)
        )
        conn.commit()
    log.info("BI role %s can read %d views in schema %s (contacts masked)", role, len(views), BI_SCHEMA)
    return views
