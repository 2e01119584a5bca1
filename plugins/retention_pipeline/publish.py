"""Write-audit-publish of the marts: BI only ever sees marts that passed every gate.

* **write**: :func:`prepare_build` empties ``marts_build``; dbt then builds every model
  of the marts folder there (the var ``marts_schema``, read by
  ``macros/generate_schema_name.sql``), followed by its tests.
* **audit**: the GX suites gate ``marts_build`` (``weekly_tasks.gate_marts``), and
  :func:`drift_check` compares this build with the last *published* week.
* **publish**: :func:`publish_marts` renames ``marts`` to ``marts_previous`` and
  ``marts_build`` to ``marts`` in one transaction, re-points the views other schemas
  built on the marts (e.g. ``bi``) at the new tables, re-applies the grants roles held
  (:data:`GRANT_HOOKS`, extensible with :func:`grant_hook`), and records the week's
  statistics for next week's drift check. A reader sees the old marts or the new ones,
  never a mix; a run that fails anywhere before leaves ``marts`` as it was.
  ``marts_previous`` keeps last week's tables until the next publish (a manual rollback
  is the same two renames the other way).

Incremental models (history that dbt appends to week after week) would lose their
history if the build schema started empty every week. A weekly history declares the
column naming a row's week (``meta: {history_week_column: ...}``, e.g.
``fct_customer_weekly_status``): :func:`prepare_build` leaves it out of ``marts_build``,
so dbt builds it there as on a first run, with only this run's week (a ``create table as``,
which PostgreSQL runs in parallel, then the model's contract constraints and indexes),
and the gates audit that week alone; :func:`publish_marts` then, in the swap's
transaction, attaches that table as the week's partition of the published one
(:func:`merge_week_histories`) and keeps the published table in ``marts`` (it does not
move to ``marts_previous``). Copying the whole
history into the build and auditing it again every week made each run cost all the
weeks before it (a year at a million customers: 50M rows copied and re-checked for a
week of 1M). An incremental mart without that meta is copied whole, as before. Either
way a failed run discards its week with the build schema: history only ever grows by
weeks that passed their gates.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retention_pipeline import warehouse
from retention_pipeline.config import get_settings

if TYPE_CHECKING:
    import psycopg

    from retention_pipeline.quality import GateResult

log = logging.getLogger(__name__)

BUILD_SCHEMA = "marts_build"
PUBLISHED_SCHEMA = "marts"
PREVIOUS_SCHEMA = "marts_previous"
# where the weeks of a published weekly history live, one partition each (BI reads them
# through the partitioned table in marts, and is granted nothing here)
PARTITIONS_SCHEMA = "marts_weeks"
# The vars every dbt invocation of the weekly DAG gets, so that marts land in the build.
DBT_BUILD_VARS = {"marts_schema": BUILD_SCHEMA}
_LOCK = "select pg_advisory_xact_lock(hashtext('retention_marts_publish'))"

STATS_DDL = """
create table if not exists ops.mart_run_stats (
    iso_week text not null,
    metric text not null,
    value numeric not null,
    recorded_at timestamptz not null,
    primary key (iso_week, metric)
)"""


class PublishBlocked(RuntimeError):
    """The swap would break something outside the marts; nothing was changed."""


# --- write ---------------------------------------------------------------------------


def _incremental_mart_configs(manifest: Path | None = None) -> dict[str, dict[str, Any]]:
    from retention_pipeline.dbt_config import ensure_manifest

    data = json.loads((manifest or ensure_manifest()).read_text())
    configs = {}
    for node in data.get("nodes", {}).values():
        config = node.get("config", {})
        if (
            node.get("resource_type") == "model"
            and config.get("materialized") == "incremental"
            and (config.get("schema") or "").strip() == PUBLISHED_SCHEMA
        ):
            configs[node.get("alias") or node["name"]] = config
    return dict(sorted(configs.items()))


def incremental_marts(manifest: Path | None = None) -> list[str]:
    """Relations of the incremental models dbt puts in the marts schema (from the manifest),
    so that a model added to the marts folder tomorrow is covered without a code change."""
    return list(_incremental_mart_configs(manifest))


def _week_columns(configs: dict[str, dict[str, Any]]) -> dict[str, str]:
    columns = {}
    for table, config in configs.items():
        column = (config.get("meta") or {}).get("history_week_column")
        if column:
            columns[table] = str(column)
    return columns


def history_week_columns(manifest: Path | None = None) -> dict[str, str]:
    """The incremental marts built a week at a time: relation -> the column naming a row's
    week (``meta.history_week_column`` in the model's config)."""
    return _week_columns(_incremental_mart_configs(manifest))


def _schema_exists(conn: psycopg.Connection, schema: str) -> bool:
    return bool(warehouse.scalar(conn, "select count(*) from pg_namespace where nspname = %s", (schema,)))


def _table_exists(conn: psycopg.Connection, schema: str, table: str) -> bool:
    return bool(warehouse.scalar(conn, "select to_regclass(%s) is not null", (f'"{schema}"."{table}"',)))


def prepare_build(
    incremental: list[str] | None = None, week_columns: dict[str, str] | None = None
) -> dict[str, int]:
    """Start the build schema afresh for the incremental marts: a weekly history
    (``week_columns``, default: from the manifest) gets no table, so dbt builds the week
    alone as on a first run; any other incremental mart gets a copy of its published rows.
    Returns the rows carried.

    Not an empty table of the published shape for a weekly history, as before
    2026-12-07: dbt then ran its incremental path, which writes the week to a temporary
    table and inserts it into the indexed one, one row at a time (at 10M orders 5.9 s for
    1.65M rows, where the create-table-as of a first build took 3.8 s). The model's
    contract gives the build the same constraints; rows the published table rejects
    still fail the publish's merge."""
    from psycopg import sql

    # one read of the manifest for both (ensure_manifest also walks the project for staleness)
    configs = _incremental_mart_configs() if incremental is None or week_columns is None else {}
    tables = list(configs) if incremental is None else incremental
    by_week = _week_columns(configs) if week_columns is None else week_columns
    carried: dict[str, int] = {}
    with warehouse.connect() as conn:
        conn.execute(_LOCK)
        conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(BUILD_SCHEMA)))
        conn.execute(sql.SQL("create schema {}").format(sql.Identifier(BUILD_SCHEMA)))
        for table in tables:
            if not _table_exists(conn, PUBLISHED_SCHEMA, table):
                log.info("%s.%s not published yet: dbt builds it in full", PUBLISHED_SCHEMA, table)
                continue
            if table in by_week:
                # dbt builds the week as a new table; publish_marts merges it into the
                # published rows
                carried[table] = 0
                continue
            new = sql.Identifier(BUILD_SCHEMA, table)
            old = sql.Identifier(PUBLISHED_SCHEMA, table)
            conn.execute(sql.SQL("create table {} (like {} including all)").format(new, old))
            cur = conn.execute(sql.SQL("insert into {} select * from {}").format(new, old))
            carried[table] = cur.rowcount
        conn.commit()
    log.info("build schema %s ready; history carried forward: %s", BUILD_SCHEMA, carried or "none")
    return carried


# --- audit: week-over-week drift ----------------------------------------------------------


def build_stats(
    conn: psycopg.Connection,
    iso_week: str,
    schema: str = BUILD_SCHEMA,
    histories: list[str] | None = None,
) -> dict[str, float]:
    """What a week's marts look like in numbers: rows per table, the week's revenue, and the
    share (in percent) of customers with orders in each churn stage.

    Incremental models (``histories``, default: from the manifest) are left out of the row
    counts: they grow by a week's worth every run, by design, and a re-run of a week adds
    nothing; their weekly volume follows ``dim_customers``, which is counted.
    """
    from psycopg import sql

    skip = set(incremental_marts() if histories is None else histories)
    stats: dict[str, float] = {}
    tables = conn.execute(
        "select table_name from information_schema.tables where table_schema = %s "
        "and table_type = 'BASE TABLE' order by 1",
        (schema,),
    ).fetchall()
    for (table,) in tables:
        if table in skip:
            continue
        count = warehouse.scalar(
            conn, sql.SQL("select count(*) from {}").format(sql.Identifier(schema, table)).as_string(conn)
        )
        stats[f"rows:{table}"] = float(count)
    if _table_exists(conn, schema, "rpt_weekly_kpis"):
        revenue = conn.execute(
            sql.SQL("select revenue from {} where iso_week = %s")
            .format(sql.Identifier(schema, "rpt_weekly_kpis"))
            .as_string(conn),
            (iso_week,),
        ).fetchone()
        if revenue is not None and revenue[0] is not None:
            stats["revenue"] = float(revenue[0])
    if _table_exists(conn, schema, "dim_customers"):
        shares = conn.execute(
            sql.SQL(
                "select churn_stage, 100.0 * count(*) / sum(count(*)) over () from {} "
                "where churn_stage is not null group by churn_stage"
            )
            .format(sql.Identifier(schema, "dim_customers"))
            .as_string(conn)
        ).fetchall()
        for stage in ("active", "churn risk", "potential churn", "churned"):
            stats[f"stage_share:{stage}"] = 0.0
        for stage, share in shares:
            stats[f"stage_share:{stage}"] = float(share)
    return stats


def previous_stats(conn: psycopg.Connection, iso_week: str) -> tuple[str | None, dict[str, float]]:
    """The statistics of the latest published week before ``iso_week`` (keyed by week, so a
    backfill of an old week compares with the week before it, not with last Monday)."""
    conn.execute(STATS_DDL)
    week = warehouse.scalar(
        conn, "select max(iso_week) from ops.mart_run_stats where iso_week < %s", (iso_week,)
    )
    if week is None:
        return None, {}
    rows = conn.execute(
        "select metric, value from ops.mart_run_stats where iso_week = %s", (week,)
    ).fetchall()
    return week, {metric: float(value) for metric, value in rows}


@dataclass(frozen=True)
class DriftBounds:
    max_rowcount_change: float
    max_revenue_change: float
    max_stage_share_shift_pp: float
    warning_ratio: float
    min_rows: int = 100


def bounds_from_settings() -> DriftBounds:
    s = get_settings()
    return DriftBounds(
        max_rowcount_change=s.max_rowcount_change,
        max_revenue_change=s.max_revenue_change,
        max_stage_share_shift_pp=s.max_stage_share_shift_pp,
        warning_ratio=s.drift_warning_ratio,
        min_rows=s.drift_min_rows,
    )


def compare_stats(
    current: dict[str, float], previous: dict[str, float], bounds: DriftBounds
) -> list[tuple[str, str, float, float, float, float]]:
    """(severity, metric, previous, current, change, bound) for every metric out of bounds.

    Row counts and revenue are compared as relative change (|new - old| / old); stage
    shares as the shift in percentage points. Tables smaller than ``min_rows`` on both
    sides are skipped: a handful of survey comments doubling is not a data problem.
    """
    out = []
    for metric, value in sorted(current.items()):
        if metric not in previous:
            continue
        old = previous[metric]
        if metric.startswith("rows:"):
            if max(old, value) < bounds.min_rows:
                continue
            change = abs(value - old) / old if old else float("inf")
            bound = bounds.max_rowcount_change
        elif metric == "revenue":
            change = abs(value - old) / old if old else (0.0 if value == 0 else float("inf"))
            bound = bounds.max_revenue_change
        elif metric.startswith("stage_share:"):
            change = abs(value - old)
            bound = bounds.max_stage_share_shift_pp
        else:
            continue
        if change > bound:
            out.append(("critical", metric, old, value, change, bound))
        elif change > bound * bounds.warning_ratio:
            out.append(("warning", metric, old, value, change, bound * bounds.warning_ratio))
    return out


def drift_check(iso_week: str, bounds: DriftBounds | None = None, schema: str = BUILD_SCHEMA) -> GateResult:
    """This week's build against the last published week, reported like a GX gate."""
    from retention_pipeline.quality import Finding, GateResult

    bounds = bounds or bounds_from_settings()
    with warehouse.connect() as conn:
        current = build_stats(conn, iso_week, schema)
        prev_week, previous = previous_stats(conn, iso_week)
        conn.commit()
    result = GateResult(suite="week_over_week_drift", table=schema, success=True, evaluated=0)
    if prev_week is None:
        log.info("no published week before %s: nothing to compare the drift with", iso_week)
        return result
    result.evaluated = len([m for m in current if m in previous])
    for severity, metric, old, new, change, bound in compare_stats(current, previous, bounds):
        unit = "pp" if metric.startswith("stage_share:") else ""
        shown = f"{change:.1f} pp" if unit else f"{change:.0%}"
        limit = f"{bound:.1f} pp" if unit else f"{bound:.0%}"
        result.findings.append(
            Finding(
                expectation="expect_week_over_week_change_within",
                column=metric,
                kwargs={"previous_week": prev_week, "bound": limit},
                severity=severity,
                unexpected_count=None,
                element_count=None,
                sample=[],
                observed=f"{old:g} in {prev_week} -> {new:g} in {iso_week} (change {shown})",
            )
        )
    result.success = not result.errors
    return result


# --- publish -------------------------------------------------------------------------------

# A grant hook runs inside the swap's transaction, after the rename: (connection, the schema
# BI read until now or None on the first publish, the schema just published).
GrantHook = Callable[["psycopg.Connection", "str | None", str], None]
GRANT_HOOKS: list[GrantHook] = []


def grant_hook(fn: GrantHook) -> GrantHook:
    """Register ``fn`` to run on every publish (e.g. grants a deployment manages itself)."""
    GRANT_HOOKS.append(fn)
    return fn


def _role(conn: psycopg.Connection, oid: int) -> psycopg.sql.Composable:
    from psycopg import sql

    if oid == 0:
        return sql.SQL("public")
    return sql.Identifier(warehouse.scalar(conn, "select pg_get_userbyid(%s)", (oid,)))


def _grant(
    conn: psycopg.Connection, privilege: str, target: psycopg.sql.Composable, grantee: int, grantable: bool
) -> None:
    """One privilege as ``aclexplode`` lists it (grantee oid, 0 for public) on ``target``."""
    from psycopg import sql

    conn.execute(
        sql.SQL("grant {} on {} to {}{}").format(
            sql.SQL(privilege),
            target,
            _role(conn, grantee),
            sql.SQL(" with grant option" if grantable else ""),
        )
    )


@grant_hook
def copy_grants(conn: psycopg.Connection, previous: str | None, published: str) -> None:
    """Give the new marts the privileges the old ones had: the schema's, each table's by
    name, and, on a table that is new this week, whatever a role held on every old table
    (the usual "BI reads all of marts" grant)."""
    from psycopg import sql

    if previous is None:
        return
    for grantee, privilege, grantable in conn.execute(
        "select a.grantee, a.privilege_type, a.is_grantable from pg_namespace n, aclexplode(n.nspacl) a "
        "where n.nspname = %s and a.grantee <> n.nspowner",
        (previous,),
    ).fetchall():
        conn.execute(
            sql.SQL("grant {} on schema {} to {}{}").format(
                sql.SQL(privilege),
                sql.Identifier(published),
                _role(conn, grantee),
                sql.SQL(" with grant option" if grantable else ""),
            )
        )
    old = conn.execute(
        "select c.relname, a.grantee, a.privilege_type, a.is_grantable "
        "from pg_class c join pg_namespace n on n.oid = c.relnamespace, aclexplode(c.relacl) a "
        "where n.nspname = %s and c.relkind in ('r', 'v', 'm', 'p') and a.grantee <> c.relowner",
        (previous,),
    ).fetchall()
    if not old:
        return
    old_tables = {
        name
        for (name,) in conn.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = %s and c.relkind in ('r', 'v', 'm', 'p')",
            (previous,),
        ).fetchall()
    }
    new_tables = {
        name
        for (name,) in conn.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = %s and c.relkind in ('r', 'v', 'm', 'p')",
            (published,),
        ).fetchall()
    }
    holders: dict[tuple[int, str, bool], set[str]] = {}
    for table, grantee, privilege, grantable in old:
        holders.setdefault((grantee, privilege, grantable), set()).add(table)
    for (grantee, privilege, grantable), tables in holders.items():
        targets = tables & new_tables
        if tables == old_tables:
            targets |= new_tables - old_tables
        for table in sorted(targets):
            _grant(conn, privilege, sql.Identifier(published, table), grantee, grantable)


@dataclass(frozen=True)
class DependentView:
    oid: int
    name: str  # schema-qualified, quoted
    definition: str  # as PostgreSQL prints it, with every relation schema-qualified
    acl: list[tuple[int, str, bool]]


def external_dependents(conn: psycopg.Connection, schema: str) -> list[DependentView]:
    """Views outside ``schema`` built on its tables (e.g. the ``bi`` views).

    PostgreSQL binds a view to a table, not to its name: after the rename such a view
    would keep reading last week's tables, and dropping the old schema would drop it.
    Their definitions are taken with an empty search_path, so that each names
    ``marts.<table>`` explicitly and can be re-created on the new tables by name.
    """
    conn.execute("set local search_path = pg_catalog")
    rows = conn.execute(
        """select distinct dep.oid, format('%%I.%%I', dep_ns.nspname, dep.relname),
                  pg_get_viewdef(dep.oid)
           from pg_depend d
           join pg_rewrite r on d.classid = 'pg_rewrite'::regclass and d.objid = r.oid
           join pg_class dep on dep.oid = r.ev_class
           join pg_namespace dep_ns on dep_ns.oid = dep.relnamespace
           join pg_class ref on d.refclassid = 'pg_class'::regclass and d.refobjid = ref.oid
           join pg_namespace ref_ns on ref_ns.oid = ref.relnamespace
           where ref_ns.nspname = %s and dep_ns.nspname <> %s and dep.relkind = 'v'
           order by 1""",
        (schema, schema),
    ).fetchall()
    conn.execute("reset search_path")
    views = []
    for oid, name, definition in rows:
        acl = conn.execute(
            "select a.grantee, a.privilege_type, a.is_grantable from pg_class c, aclexplode(c.relacl) a "
            "where c.oid = %s and a.grantee <> c.relowner",
            (oid,),
        ).fetchall()
        views.append(DependentView(oid, name, definition, [tuple(a) for a in acl]))
    return views


def _rebind_views(conn: psycopg.Connection, views: list[DependentView]) -> None:
    """Point the views outside the marts at the newly published tables, in the swap's
    transaction: BI reading through them switches weeks at the same instant as ``marts``."""
    from psycopg import sql

    for view in views:
        body = sql.SQL(view.definition.rstrip().rstrip(";"))
        try:
            with conn.transaction():
                conn.execute(sql.SQL("create or replace view {} as ").format(sql.SQL(view.name)) + body)
        except Exception:
            # the columns changed shape: replace the view (its own dependents block this)
            try:
                with conn.transaction():
                    conn.execute(sql.SQL("drop view {}").format(sql.SQL(view.name)))
                    conn.execute(sql.SQL("create view {} as ").format(sql.SQL(view.name)) + body)
                    for grantee, privilege, grantable in view.acl:
                        _grant(conn, privilege, sql.SQL(view.name), grantee, grantable)
            except Exception as exc:
                raise PublishBlocked(
                    f"the view {view.name} reads the marts and cannot be re-created on the new tables: {exc}"
                ) from exc
        log.info("view %s now reads the published marts", view.name)


def _columns(conn: psycopg.Connection, schema: str, table: str) -> list[tuple[str, str]]:
    return [
        (name, type_)
        for name, type_ in conn.execute(
            "select a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute a "
            "where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped order by a.attnum",
            (f'"{schema}"."{table}"',),
        ).fetchall()
    ]


def _partitions(conn: psycopg.Connection, parent: str) -> set[str]:
    """The names of the partitions of ``marts.<parent>`` (in :data:`PARTITIONS_SCHEMA`)."""
    return {
        name
        for (name,) in conn.execute(
            "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
            "where i.inhparent = %s::regclass",
            (f'"{PUBLISHED_SCHEMA}"."{parent}"',),
        ).fetchall()
    }


def _partition_name(table: str, weeks: list[Any]) -> str:
    first, last = str(weeks[0]), str(weeks[-1])
    label = first if len(weeks) == 1 else f"{first}_to_{last}"
    return f"{table}__{''.join(ch if ch.isalnum() else '_' for ch in label)}"


def _move_to_partitions(conn: psycopg.Connection, schema: str, table: str, name: str) -> None:
    """Move ``schema.table`` into :data:`PARTITIONS_SCHEMA` as ``name``, its indexes renamed
    after it first (index names are unique per schema, and each week's table comes with
    the same ones)."""
    from psycopg import sql

    indexes = conn.execute(
        "select c.relname from pg_index i join pg_class c on c.oid = i.indexrelid "
        "where i.indrelid = %s::regclass order by c.oid",
        (f'"{schema}"."{table}"',),
    ).fetchall()
    for i, (index,) in enumerate(indexes):
        conn.execute(
            sql.SQL("alter index {} rename to {}").format(
                sql.Identifier(schema, index), sql.Identifier(f"{name}_idx{i or ''}")
            )
        )
    conn.execute(
        sql.SQL("alter table {} rename to {}").format(sql.Identifier(schema, table), sql.Identifier(name))
    )
    conn.execute(
        sql.SQL("alter table {} set schema {}").format(
            sql.Identifier(schema, name), sql.Identifier(PARTITIONS_SCHEMA)
        )
    )


def partition_by_week(conn: psycopg.Connection, schema: str, table: str, week_column: str) -> bool:
    """Turn the plain table ``schema.table`` into one partitioned by list of ``week_column``,
    under the same name: its rows become one partition (in :data:`PARTITIONS_SCHEMA`, for
    the weeks they hold), next to a default partition that takes rows of any other week
    (a ``dbt build`` run straight into ``marts``). The new table gets the old one's
    columns, constraints, indexes and grants. Done in a savepoint: a table that cannot be
    partitioned so (a unique index without the week column, say) stays as it was, and the
    publish merges into it as before. Returns whether it was partitioned.

    The views on the old table still read it (now one partition) until
    :func:`publish_marts` re-creates them on the published names, as it does for every
    view outside the marts."""
    from psycopg import errors, sql

    weeks = [
        week
        for (week,) in conn.execute(
            sql.SQL("select distinct {} from {} where {} is not null order by 1").format(
                sql.Identifier(week_column), sql.Identifier(schema, table), sql.Identifier(week_column)
            )
        ).fetchall()
    ]
    holder = _partition_name(table, weeks) if weeks else f"{table}__empty"
    acl = conn.execute(
        "select a.grantee, a.privilege_type, a.is_grantable from pg_class c, aclexplode(c.relacl) a "
        "where c.oid = %s::regclass and a.grantee <> c.relowner",
        (f'"{schema}"."{table}"',),
    ).fetchall()
    try:
        with conn.transaction():
            conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(PARTITIONS_SCHEMA)))
            _move_to_partitions(conn, schema, table, holder)
            conn.execute(
                sql.SQL("create table {} (like {} including all) partition by list ({})").format(
                    sql.Identifier(schema, table),
                    sql.Identifier(PARTITIONS_SCHEMA, holder),
                    sql.Identifier(week_column),
                )
            )
            if weeks:
                conn.execute(
                    sql.SQL("alter table {} attach partition {} for values in ({})").format(
                        sql.Identifier(schema, table),
                        sql.Identifier(PARTITIONS_SCHEMA, holder),
                        sql.SQL(", ").join(sql.Literal(week) for week in weeks),
                    )
                )
            else:
                conn.execute(sql.SQL("drop table {}").format(sql.Identifier(PARTITIONS_SCHEMA, holder)))
            conn.execute(
                sql.SQL("create table {} partition of {} default").format(
                    sql.Identifier(PARTITIONS_SCHEMA, f"{table}__default"), sql.Identifier(schema, table)
                )
            )
            for grantee, privilege, grantable in acl:
                _grant(conn, privilege, sql.Identifier(schema, table), grantee, grantable)
    except errors.Error as exc:
        log.warning(
            "%s.%s stays a plain table (not partitioned by %s): %s",
            schema,
            table,
            week_column,
            exc.diag.message_primary or exc,
        )
        return False
    log.info(
        "%s.%s is now partitioned by %s: its %d week(s) are the partition %s.%s",
        schema,
        table,
        week_column,
        len(weeks),
        PARTITIONS_SCHEMA,
        holder,
    )
    return True


def _attach_week(conn: psycopg.Connection, table: str, week_column: str) -> int | None:
    """Publish the build's table of a weekly history as the published table's partition for
    its week: no row is copied or indexed again, whatever the history's length. A re-run's
    week replaces the partition the week had. Returns the rows attached, or None (and
    changes nothing) when the build's table is not one whole new week the published table
    can take as it is: several weeks, a week inside an older partition of several weeks,
    or columns, types or constraints that differ (the caller then merges row by row)."""
    from psycopg import errors, sql

    published = sql.Identifier(PUBLISHED_SCHEMA, table)
    build = sql.Identifier(BUILD_SCHEMA, table)
    week = sql.Identifier(week_column)
    weeks = conn.execute(
        sql.SQL("select {}, count(*) from {} group by 1 limit 2").format(week, build)
    ).fetchall()
    if len(weeks) != 1 or weeks[0][0] is None:
        return None
    (value, rows), name = weeks[0], _partition_name(table, [weeks[0][0]])
    try:
        with conn.transaction():
            if name in _partitions(conn, table):
                # this week was published before, as a partition of its own: a re-run
                # replaces it whole
                conn.execute(
                    sql.SQL("alter table {} detach partition {}").format(
                        published, sql.Identifier(PARTITIONS_SCHEMA, name)
                    )
                )
                conn.execute(sql.SQL("drop table {}").format(sql.Identifier(PARTITIONS_SCHEMA, name)))
            # rows of the week written straight into the published table (its default
            # partition) would block the attach, and the build replaces them anyway
            conn.execute(sql.SQL("delete from {} where {} = {}").format(published, week, sql.Literal(value)))
            _move_to_partitions(conn, BUILD_SCHEMA, table, name)
            conn.execute(
                sql.SQL("alter table {} attach partition {} for values in ({})").format(
                    published, sql.Identifier(PARTITIONS_SCHEMA, name), sql.Literal(value)
                )
            )
    except errors.Error as exc:
        log.info(
            "%s.%s: the week %s cannot be attached as it is (%s); merging its rows",
            PUBLISHED_SCHEMA,
            table,
            value,
            exc.diag.message_primary or exc,
        )
        return None
    log.info(
        "%s.%s: the audited week %s attached as its partition %s.%s (%d rows)",
        PUBLISHED_SCHEMA,
        table,
        value,
        PARTITIONS_SCHEMA,
        name,
        rows,
    )
    return int(rows)


def merge_week_histories(conn: psycopg.Connection, week_columns: dict[str, str]) -> dict[str, int]:
    """Inside the swap's transaction, before the renames: put the weeks each build table
    of a weekly history holds into the published history (the published table stays and
    is moved back into ``marts`` after the renames). Returns relation -> rows published.

    A published history is partitioned by week (:func:`partition_by_week`; one written
    before partitioning is turned into one on its next publish, its weeks becoming one
    partition), and the build's week is attached as its partition (:func:`_attach_week`):
    at 10M orders the row-by-row merge it replaces took 10.7-13.4 s (an insert of 1.65M
    rows into the indexed history, after a delete of the week), the attach 0.40-0.50 s,
    and a re-run no longer leaves the replaced rows to vacuum. A week the published table cannot take as a
    partition is merged as before: its rows replace the week's in the published table
    (into whichever partition holds the week), with any column the build gained (dbt's
    ``append_new_columns``) added to the published table first. A history not published
    yet is partitioned in the build and published by the swap."""
    from psycopg import sql

    merged: dict[str, int] = {}
    for table, week_column in week_columns.items():
        if not _table_exists(conn, BUILD_SCHEMA, table):
            continue
        if not _table_exists(conn, PUBLISHED_SCHEMA, table):
            partition_by_week(conn, BUILD_SCHEMA, table, week_column)
            continue
        published = sql.Identifier(PUBLISHED_SCHEMA, table)
        build = sql.Identifier(BUILD_SCHEMA, table)
        have = {name for name, _ in _columns(conn, PUBLISHED_SCHEMA, table)}
        columns = _columns(conn, BUILD_SCHEMA, table)
        for name, type_ in columns:
            if name not in have:
                conn.execute(
                    sql.SQL("alter table {} add column {} {}").format(
                        published, sql.Identifier(name), sql.SQL(type_)
                    )
                )
        kind = warehouse.scalar(
            conn,
            "select relkind::text from pg_class where oid = %s::regclass",
            (f'"{PUBLISHED_SCHEMA}"."{table}"',),
        )
        partitioned = kind == "p" or partition_by_week(conn, PUBLISHED_SCHEMA, table, week_column)
        attached = _attach_week(conn, table, week_column) if partitioned else None
        if attached is not None:
            merged[table] = attached
            continue
        names = sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns)
        week = sql.Identifier(week_column)
        conn.execute(
            sql.SQL("delete from {} where {} in (select distinct {} from {})").format(
                published, week, week, build
            )
        )
        cur = conn.execute(
            sql.SQL("insert into {} ({}) select {} from {}").format(published, names, names, build)
        )
        merged[table] = cur.rowcount
        conn.execute(sql.SQL("drop table {}").format(build))
        log.info(
            "%s.%s: the audited week merged into the published history (%d rows)",
            PUBLISHED_SCHEMA,
            table,
            cur.rowcount,
        )
    return merged


def publish_marts(iso_week: str, week_columns: dict[str, str] | None = None) -> dict[str, str]:
    """Swap the audited build into ``marts`` in one transaction and record its statistics.
    The weekly histories (``week_columns``, default: from the manifest) are not swapped:
    their build's week is attached to, or merged into, the published table (see
    :func:`merge_week_histories`)."""
    from psycopg import sql

    with warehouse.connect() as conn:
        conn.execute(_LOCK)
        if not _schema_exists(conn, BUILD_SCHEMA):
            conn.execute(STATS_DDL)
            done = warehouse.scalar(
                conn, "select count(*) from ops.mart_run_stats where iso_week = %s", (iso_week,)
            )
            if done and _schema_exists(conn, PUBLISHED_SCHEMA):
                # a retry after a publish that committed: the task is a transaction, done once
                log.info("%s was published already; nothing to swap", iso_week)
                return {"iso_week": iso_week, "published": PUBLISHED_SCHEMA, "previous": ""}
            raise PublishBlocked(f"there is no {BUILD_SCHEMA} to publish (did dbt run?)")
        stale = external_dependents(conn, PREVIOUS_SCHEMA)
        if stale:
            raise PublishBlocked(
                "views outside the marts read the previous marts and would be dropped with them: "
                + ", ".join(v.name for v in stale)
            )
        dependents = external_dependents(conn, PUBLISHED_SCHEMA)
        # one read of the manifest for the statistics and the merge
        histories: list[str] | None = None
        if week_columns is None:
            configs = _incremental_mart_configs()
            histories, week_columns = list(configs), _week_columns(configs)
        stats = build_stats(conn, iso_week, BUILD_SCHEMA, histories)
        had_marts = _schema_exists(conn, PUBLISHED_SCHEMA)
        merged = merge_week_histories(conn, week_columns)
        # the published histories stay in marts (merged above, or left as they were if
        # this build has no table of theirs); only a history new this week is swapped in
        kept = [
            table
            for table in week_columns
            if _table_exists(conn, PUBLISHED_SCHEMA, table) and not _table_exists(conn, BUILD_SCHEMA, table)
        ]
        conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(PREVIOUS_SCHEMA)))
        if had_marts:
            conn.execute(
                sql.SQL("alter schema {} rename to {}").format(
                    sql.Identifier(PUBLISHED_SCHEMA), sql.Identifier(PREVIOUS_SCHEMA)
                )
            )
        conn.execute(
            sql.SQL("alter schema {} rename to {}").format(
                sql.Identifier(BUILD_SCHEMA), sql.Identifier(PUBLISHED_SCHEMA)
            )
        )
        for table in kept:
            conn.execute(
                sql.SQL("alter table {} set schema {}").format(
                    sql.Identifier(PREVIOUS_SCHEMA, table), sql.Identifier(PUBLISHED_SCHEMA)
                )
            )
        _rebind_views(conn, dependents)
        for hook in GRANT_HOOKS:
            hook(conn, PREVIOUS_SCHEMA if had_marts else None, PUBLISHED_SCHEMA)
        conn.execute(STATS_DDL)
        conn.execute("delete from ops.mart_run_stats where iso_week = %s", (iso_week,))
        with conn.cursor() as cur:
            cur.executemany(
                "insert into ops.mart_run_stats (iso_week, metric, value, recorded_at) "
                "values (%s, %s, %s, clock_timestamp())",
                [(iso_week, metric, value) for metric, value in stats.items()],
            )
        conn.commit()
    log.info(
        "published %s as %s for %s (previous kept as %s); %d statistics recorded",
        BUILD_SCHEMA,
        PUBLISHED_SCHEMA,
        iso_week,
        PREVIOUS_SCHEMA if had_marts else "none",
        len(stats),
    )
    return {
        "iso_week": iso_week,
        "published": PUBLISHED_SCHEMA,
        "previous": PREVIOUS_SCHEMA if had_marts else "",
        "history_rows_merged": ", ".join(f"{table}={rows}" for table, rows in merged.items()),
    }
