{#-
    Pre-hook of a weekly incremental history (keyed on week_start): before a
    run adds the week ending at as_of, delete whatever an earlier run stored
    for that week, so that the rows the run appends replace the week whole (a
    customer who left the base since the first run keeps no stale row).
-#}
{% macro delete_rebuilt_week() -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where week_start = ({{ shift_in_business_tz(as_of(), "interval '-7 days'") }} at time zone {{ business_timezone() }})::date
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
