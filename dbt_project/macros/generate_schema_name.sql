{#-
    Custom schemas are used as-is (staging, intermediate, marts) instead of
    dbt's default "<target_schema>_<custom>": the Python side and the grants
    rely on fixed schema names in every environment.

    Write-audit-publish: every model whose schema is `marts` (the whole marts
    folder, by its folder config) goes to the schema named by the var
    `marts_schema` instead. The weekly DAG sets it to `marts_build`, gates that
    schema and only then swaps it into `marts` (retention_pipeline/publish.py);
    plain `dbt build` keeps writing `marts`.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- elif custom_schema_name | trim == 'marts' -%}
        {{ var('marts_schema', 'marts') }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
