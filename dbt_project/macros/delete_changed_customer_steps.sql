{#-
    Pre-hook of int_customer_order_steps: before the run computes the steps of
    the customers that have none stored, delete the steps of every customer
    whose orders raw received or saw change since the table was last brought
    up to date (`loaded_through`, the highest load batch its runs had seen):
    the customers of those orders now, and the customers whose stored steps
    hold one of them (an order moved to another customer, or no longer
    completed, leaves a stale step behind otherwise). One statement, so both
    sets are read before anything is deleted. A table stored without one of
    the columns this version writes (`columns`; on_schema_change adds them
    empty) is emptied, and so recomputed whole.
-#}
{% macro delete_changed_customer_steps(orders, columns) -%}
    {%- if is_incremental() -%}
        {%- set stored_columns = adapter.get_columns_in_relation(this) | map(attribute='name') | list if execute else [] -%}
        {%- set missing = columns | reject('in', stored_columns) | list -%}
        {%- if not missing or not execute -%}
        delete from {{ this }}
        where customer_id in (
            with changed as (
                select customer_id, order_id
                from {{ orders }}
                where batch_id > (select coalesce(max(loaded_through), 0) from {{ this }})
            )
            select customer_id from changed
            union
            select stored.customer_id
            from {{ this }} as stored
            inner join changed
                on stored.order_id = changed.order_id
        )
        {%- else -%}
        delete from {{ this }}
        {%- endif -%}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
