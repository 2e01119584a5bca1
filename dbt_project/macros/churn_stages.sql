{#-
    The churn stages in order from safe to lost, as SQL string literals, e.g.
    for a grid of stage transitions. Must list every stage that
    customer_stages() can return.
-#}
{% macro churn_stages() -%}
    {{ return(['active', 'churn risk', 'potential churn', 'churned']) }}
{%- endmacro %}
