{#-
    Quantile score 1..bins, higher is better: order_by must sort the worst
    value first. score = greatest(1, ceil(cume_dist * bins)); ties share a score.
-#}
{% macro quantile_score(order_by, bins) -%}
    greatest(1, ceil({{ cumulative_share(order_by) }} * {{ bins }}))::integer
{%- endmacro %}
