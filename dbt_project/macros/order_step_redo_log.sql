{#-
    The redo log of int_customer_order_steps (see
    macros/redo_changed_step_tails.sql, which writes it, and
    macros/delete_stale_period_ends.sql, which reads it): a relation beside the
    order steps, named after them with `__redone`. Not a dbt model: the steps'
    pre-hook replaces its rows in the steps' own transaction, so the log and
    the steps always describe the same run.
-#}
{% macro order_step_redo_log(order_steps) -%}
    {{- return(relation_beside(order_steps, '__redone')) -}}
{%- endmacro %}


{#- A table in the schema of `relation`, named after it with `suffix`: state kept beside
    a model (the redo log, a stage history's __seen record). A new relation, not
    relation.incorporate(): under `dbt run --empty` a ref carries an empty-limit
    subquery that a table name must not have. -#}
{% macro relation_beside(relation, suffix) -%}
    {{- return(api.Relation.create(
        database=relation.database,
        schema=relation.schema,
        identifier=relation.identifier ~ suffix,
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
