{#-
    timestamptz + interval computed on the UTC calendar, so "7 days" or
    "12 months" never depends on the session time zone (DST shifts).
-#}
{% macro shift_in_utc(timestamp_expr, interval_expr) -%}
    ((({{ timestamp_expr }}) at time zone 'utc') + ({{ interval_expr }})) at time zone 'utc'
{%- endmacro %}
