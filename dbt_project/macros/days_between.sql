{#-
    Whole days elapsed from one timestamp to a later one (floor of the
    exact difference), e.g. recency = days_between(last_order_at, as_of).
-#}
{% macro days_between(start_at, end_at) -%}
    floor(extract(epoch from (({{ end_at }}) - ({{ start_at }}))) / 86400)::integer
{%- endmacro %}
