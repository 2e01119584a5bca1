{#-
    The two columns every model kept incrementally by period end stores beside
    its rows, and that delete_stale_period_ends reads on the next run:
    `loaded_through` (the highest orders load batch the computation reflects)
    and `settings_key` (the business vars it used, macros/period_settings_key.sql).

    `source`: the incremental model the caller computes from (the order steps
    for a stage history, the history for the flows and the 80/20 check). Its
    own `loaded_through` is what the caller has seen, not the highest batch in
    raw: an ingest that commits after the source was built and before the
    caller runs is in raw but not in the source, and claiming it would make the
    next run skip the period ends it changes.

    `seen`: the SQL of that batch when it is not the source's highest
    `loaded_through` (the monthly readers: stages_to_date_seen).
-#}
{% macro period_bookkeeping_columns(source, seen=none) -%}
    {%- if seen is not none -%}
    {{ seen }} as loaded_through,
    {%- else -%}
    (select coalesce(max(loaded_through), 0) from {{ source }}) as loaded_through,
    {%- endif %}
            {{ period_settings_key() }}::text as settings_key
{%- endmacro %}
