{#-
    The two columns every model kept incrementally by period end stores beside
    its rows, and that delete_stale_period_ends reads on the next run:
    `loaded_through` (the highest orders load batch the computation saw) and
    `settings_key` (the business vars it used, macros/period_settings_key.sql).
    `orders`: the orders CTE of the calling model.
-#}
{% macro period_bookkeeping_columns(orders) -%}
    (select coalesce(max(batch_id), 0) from {{ orders }}) as loaded_through,
            {{ period_settings_key() }}::text as settings_key
{%- endmacro %}
