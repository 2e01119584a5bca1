{#-
    The exclusive end of the reporting period as a timestamptz literal.
    Every "as of" computation uses it instead of now(), so a re-run for an old
    week gives that week's answer. Parsing works without the var; executing
    a model that needs it fails with a clear message.
-#}
{% macro as_of() -%}
    {%- set value = var('as_of', none) -%}
    {%- if value is none or (value | string | trim) == '' -%}
        {%- if execute -%}
            {{ exceptions.raise_compiler_error(
                "The var 'as_of' is required: the exclusive end of the reporting period, "
                ~ "e.g. --vars '{as_of: \"2026-11-23T00:00:00+00:00\"}' (the Airflow data interval end)."
            ) }}
        {%- endif -%}
        {%- set value = '1970-01-01T00:00:00+00:00' -%}
    {%- endif -%}
    cast('{{ value | string | trim }}' as timestamptz)
{%- endmacro %}
