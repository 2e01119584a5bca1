{#-
    Custom schemas are used as-is (staging, intermediate, marts) instead of
    dbt's default "<target_schema>_<custom>": the Python side and the grants
    rely on fixed schema names in every environment.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
