{#-
    Exact cume_dist() per distinct value of `column` in `rows` (a CTE or
    relation): value, share, where share is the share of rows whose value sorts
    at or before this one in `order` ('asc' or 'desc'), peers included, so tied
    rows always share one value. Computed from counts in numeric (cume_dist()
    is double precision, and 0.6 * 5 must be exactly 3).

    Per distinct value, not per row: the caller joins the shares back. A
    window over the rows themselves sorts every row (1.65M customers at 10M
    orders); the counts of their distinct values (164k revenues, 730 recency
    days) are far fewer.
-#}
{% macro cumulative_shares(rows, column, order='asc') -%}
    select
        {{ column }} as value,
        sum(count(*)) over (order by {{ column }} {{ order }})::bigint::numeric
            / sum(count(*)) over ()::bigint as share
    from {{ rows }}
    group by 1
{%- endmacro %}
