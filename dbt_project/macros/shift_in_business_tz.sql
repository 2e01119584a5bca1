{#-
    timestamptz + interval computed on the business calendar (macros/
    business_timezone.sql): "7 days" before a Monday 00:00 is the Monday 00:00
    before, across a DST change too, and never depends on the session time zone.
-#}
{% macro shift_in_business_tz(timestamp_expr, interval_expr) -%}
    ((({{ timestamp_expr }}) at time zone {{ business_timezone() }}) + ({{ interval_expr }})) at time zone {{ business_timezone() }}
{%- endmacro %}
