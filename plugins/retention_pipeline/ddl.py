"""DDL of the pipeline's own schemas: raw, quarantine and the ops ledgers.

Everything is ``create ... if not exists`` so that bootstrapping is idempotent and
can run at the start of every task that needs it.
"""

from __future__ import annotations

from retention_pipeline.entities import ENTITIES, Entity

SCHEMAS = ("raw", "quarantine", "landing", "ops")


def raw_table_ddl(entity: Entity) -> str:
    cols = ",\n    ".join(f"{c.name} {c.sql_type}" for c in entity.columns)
    return f"""
create table if not exists raw.{entity.name} (
    {cols},
    _extra jsonb,
    _batch_id bigint not null,
    _loaded_at timestamptz not null,
    primary key ({entity.key})
)"""


def raw_batch_index_name(entity: Entity) -> str:
    return f"{entity.name}__batch_id"


def raw_batch_index_ddl(entity: Entity) -> str:
    """The index the incremental dbt models read raw by: every run asks for the rows of
    the batches after the highest one it has seen (``_batch_id > loaded_through``) and
    for raw's highest batch, which without it are a scan of all of raw's history for a
    week's worth of rows. A btree, not BRIN: a changed row (a refund) moves to a new
    batch wherever its new version lands in the heap, and the highest batch is one
    index probe. New batches always have the highest ids, so daily loads only ever add
    to its rightmost page."""
    return f"create index if not exists {raw_batch_index_name(entity)} on raw.{entity.name} (_batch_id)"


def raw_order_time_index_name() -> str:
    return f"orders__{ENTITIES['orders'].event_column}_brin"


def raw_order_time_index_ddl() -> str:
    """The index the weekly source check finds the newest order before the week's end by
    (weekly_tasks.check_sources): it asks for orders within the allowed lag before the
    week's end, which without an index is a scan of every order each week. BRIN, not a
    btree: orders arrive roughly in time order, so each range of pages spans a narrow
    time range; the index is a few pages, a load only extends its last range, and a
    backfill's bulk merge needs no rebuild (a btree on 10M timestamps would cost every
    load its upkeep; the first load builds it in one scan). Ranges not summarized yet
    (the newest pages) are always read, so the answer is exact either way;
    autosummarize lets autovacuum summarize them."""
    column = ENTITIES["orders"].event_column
    return (
        f"create index if not exists {raw_order_time_index_name()} on raw.orders "
        f"using brin ({column}) with (autosummarize = on)"
    )


def quarantine_table_ddl(entity: Entity) -> str:
    # Rejected rows are kept whole, as text, exactly as the file had them.
    cols = ",\n    ".join(f"{c.name} text" for c in entity.columns)
    return f"""
create table if not exists quarantine.{entity.name} (
    {cols},
    _extra jsonb,
    _reason text not null,
    _source_file text not null,
    _line_number bigint,
    _batch_id bigint not null,
    _quarantined_at timestamptz not null
)"""


OPS_DDL = (
    """
create table if not exists ops.load_batches (
    batch_id bigserial primary key,
    entity text not null,
    source text not null,
    interval_start timestamptz,
    interval_end timestamptz,
    status text not null check (status in ('landed', 'published', 'failed', 'rejected')),
    rows_read bigint not null default 0,
    rows_loaded bigint not null default 0,
    rows_quarantined bigint not null default 0,
    extra_columns text[] not null default '{}',
    error text,
    started_at timestamptz not null,
    finished_at timestamptz
)""",
    """
create table if not exists ops.loaded_files (
    entity text not null,
    file_name text not null,
    sha256 text not null,
    batch_id bigint not null references ops.load_batches (batch_id),
    rows_read bigint not null,
    loaded_at timestamptz not null,
    primary key (entity, file_name, sha256)
)""",
    """
create table if not exists ops.source_watermarks (
    entity text not null,
    source_key text not null,
    watermark timestamptz not null,
    cursor text,
    batch_id bigint not null references ops.load_batches (batch_id),
    updated_at timestamptz not null,
    primary key (entity, source_key)
)""",
    # what a landed batch will move the watermark to, applied by publish_batch only
    """
create table if not exists ops.pending_watermarks (
    batch_id bigint primary key references ops.load_batches (batch_id),
    entity text not null,
    source_key text not null,
    watermark timestamptz not null,
    cursor text
)""",
    """
create table if not exists ops.batch_files (
    batch_id bigint not null references ops.load_batches (batch_id),
    file_name text not null,
    sha256 text not null,
    rows_read bigint not null,
    primary key (batch_id, file_name)
)""",
    # pg_input_is_valid arrived in PostgreSQL 16; older servers get an exception-based twin.
    """
do $$ begin
    if current_setting('server_version_num')::int >= 160000 then
        execute $f$create or replace function ops.is_valid_input(v text, typ text) returns boolean
            language sql stable parallel safe as 'select pg_input_is_valid(v, typ)'$f$;
    else
        execute $f$create or replace function ops.is_valid_input(v text, typ text) returns boolean
            language plpgsql stable as $b$
            begin execute format('select %L::%s', v, typ); return true;
            exception when others then return false; end $b$ $f$;
    end if;
end $$""",
    """
create table if not exists ops.digest_sends (
    iso_week text not null,
    recipient text not null,
    status text not null check (status in ('sending', 'sent', 'failed')),
    message_id text not null,
    subject text not null,
    attempts integer not null default 0,
    error text,
    started_at timestamptz not null,
    sent_at timestamptz,
    primary key (iso_week, recipient)
)""",
    """
create table if not exists ops.outreach_pushes (
    iso_week text not null,
    sink text not null,
    customer_id text not null,
    status text not null check (status in ('pending', 'pushed', 'rejected', 'failed')),
    intervention_level text,
    detail text,
    started_at timestamptz not null,
    finished_at timestamptz,
    primary key (iso_week, sink, customer_id)
)""",
    # outreach/: what the pushes carried (variant, tool ids, attempts) for resuming and results
    "alter table ops.outreach_pushes add column if not exists variant text",
    "alter table ops.outreach_pushes add column if not exists idempotency_key text",
    "alter table ops.outreach_pushes add column if not exists external_id text",
    "alter table ops.outreach_pushes add column if not exists attempts integer not null default 0",
    # One row per customer considered by a campaign (ISO week): called, held out or excluded
    # with the reason. Frozen on the first run so a re-run pushes nobody new.
    """
create table if not exists ops.outreach_assignments (
    iso_week text not null,
    customer_id text not null,
    call_rank integer not null,
    arm text not null check (arm in ('treatment', 'holdout', 'excluded')),
    exclusion_reason text,
    variant text,
    offer_code text,
    intervention_level text,
    campaign_start timestamptz not null,
    payload jsonb not null,
    assigned_at timestamptz not null,
    primary key (iso_week, customer_id)
)""",
)


def _unless_present(index: str, ddl: str) -> str:
    """``ddl`` run only when the index is missing. ``create index if not exists`` locks the
    table before it finds the index already there, and every task bootstraps: right
    after a large load, when autovacuum is at work on that table, the lock waited
    deadlock_timeout (1 s) for autovacuum to be cancelled, in each task."""
    return f"do $$ begin if to_regclass('{index}') is null then execute $ddl${ddl}$ddl$; end if; end $$"


def bootstrap_statements() -> list[str]:
    stmts = [f"create schema if not exists {s}" for s in SCHEMAS]
    for entity in ENTITIES.values():
        stmts.append(raw_table_ddl(entity))
        stmts.append(_unless_present(f"raw.{raw_batch_index_name(entity)}", raw_batch_index_ddl(entity)))
        stmts.append(quarantine_table_ddl(entity))
    stmts.append(_unless_present(f"raw.{raw_order_time_index_name()}", raw_order_time_index_ddl()))
    stmts.extend(OPS_DDL)
    return stmts
