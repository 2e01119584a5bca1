{#-
    Quantile scores 1..bins, higher is better, one row per distinct value of
    `column` in `rows`: value, score = greatest(1, ceil(cume_dist * bins)), with
    the exact cume_dist of cumulative_shares (`order`: 'asc' when a low value is
    worst, 'desc' when a high one is), so tied rows always share a score. The
    caller joins the scores back to its rows.
-#}
{% macro quantile_scores(rows, column, bins, order='asc') -%}
    select
        value,
        greatest(1, ceil(share * {{ bins }}))::integer as score
    from (
        {{ cumulative_shares(rows, column, order) | indent(8) }}
    ) as shares
{%- endmacro %}
