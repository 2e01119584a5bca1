{#-
    Exact cume_dist(): share of rows whose value sorts at or before this row's,
    peers included, so tied rows always share one value. Computed from counts
    in numeric (cume_dist() is double precision, and 0.6 * 5 must be exactly 3).
-#}
{% macro cumulative_share(order_by, partition_by=none) -%}
    (
        count(*) over ({% if partition_by %}partition by {{ partition_by }} {% endif %}order by {{ order_by }})::numeric
        / count(*) over ({% if partition_by %}partition by {{ partition_by }}{% endif %})
    )
{%- endmacro %}
