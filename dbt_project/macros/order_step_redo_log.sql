{#-
    The redo log of int_customer_order_steps (see
    macros/redo_changed_step_tails.sql, which writes it, and
    macros/delete_stale_period_ends.sql, which reads it): a relation beside the
    order steps, named after them with `__redone`. Not a dbt model: the steps'
    pre-hook replaces its rows in the steps' own transaction, so the log and
    the steps always describe the same run.
-#}
{% macro order_step_redo_log(order_steps) -%}
    {#- a new relation, not order_steps.incorporate(): under `dbt run --empty` a
        ref carries an empty-limit subquery that a table name must not have -#}
    {{- return(api.Relation.create(
        database=order_steps.database,
        schema=order_steps.schema,
        identifier=order_steps.identifier ~ '__redone',
        type='table',
    )) -}}
{%- endmacro %}


{% macro create_order_step_redo_log(log) -%}
    create unlogged table if not exists {{ log }} (
        customer_id text not null,
        touched_at timestamptz not null,
        since_loaded_through bigint not null,
        loaded_through bigint not null
    )
{%- endmacro %}
