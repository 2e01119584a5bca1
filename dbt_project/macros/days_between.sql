{#-
    Whole days elapsed from one timestamp to a later one (floor of the
    exact difference), e.g. recency = days_between(last_order_at, as_of).
    date_part gives the seconds as a double (extract would give a numeric,
    several times slower over millions of rows); the difference is a whole
    number of microseconds, never closer than 1e-11 day to a whole day, far
    above a double's rounding, so the floor is exact.
-#}
{% macro days_between(start_at, end_at) -%}
    floor(date_part('epoch', ({{ end_at }}) - ({{ start_at }})) / 86400)::integer
{%- endmacro %}
