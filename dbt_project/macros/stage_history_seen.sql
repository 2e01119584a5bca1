{#-
    How far a stage history was last brought up to date, for a history that
    does not write rows every run (the monthly one, which stores complete months
    only: a week that crosses no month end and that no late change reaches
    writes nothing). delete_stale_period_ends reads the highest load batch the
    history has seen from its rows' `loaded_through`; without a row written,
    that stays at an older run, the steps' redo log no longer starts where the
    history left off, and every stored end a late change reaches would be
    dropped whole instead of redone for the changed customers. So the
    post-hook records, in a relation beside the history named after it with
    `__seen`, the order steps' `loaded_through` the run read, and the pre-hook
    takes the higher of the two. Not a dbt model, like the redo log: it is
    written in the history's own transaction, so the two always agree.
-#}
{% macro stage_history_seen(history) -%}
    {{- return(relation_beside(history, '__seen')) -}}
{%- endmacro %}


{% macro create_stage_history_seen(seen) -%}
    create unlogged table if not exists {{ seen }} (loaded_through bigint not null)
{%- endmacro %}


{#- post-hook: what this run's rows (or its absence of rows) reflect; the same value
    period_bookkeeping_columns stores on the rows it writes -#}
{% macro record_stage_history_seen(order_steps) -%}
    {%- set seen = stage_history_seen(this) -%}
    {{ create_stage_history_seen(seen) }};
    delete from {{ seen }};
    insert into {{ seen }} (loaded_through)
    select coalesce(max(loaded_through), 0) from {{ order_steps }}
{%- endmacro %}


{#- what `history` has been brought up to date with: the higher of its rows'
    loaded_through and its __seen record (read by its own pre-hook and, through
    stages_to_date_seen, by its readers); refs unaliased, as under `dbt run
    --empty` each is an already aliased subquery -#}
{% macro stage_history_seen_through(history) -%}
    greatest(
        (select coalesce(max(loaded_through), 0) from {{ history }}),
        (select max(loaded_through) from {{ stage_history_seen(history) }})
    )
{%- endmacro %}
