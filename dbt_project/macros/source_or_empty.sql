{#-
    A source relation, or an empty typed select when the table does not exist yet.
    Outreach results must build before the first campaign and before the call-center
    source is ever loaded: a missing table means "no rows yet", not an error.
    `empty_columns` is a list of "expression as name" strings with explicit casts.
    Use it as a whole from-item, without an alias of your own: under `dbt run
    --empty` dbt renders the source as an aliased subquery itself, and the empty
    select carries the table's name as its alias.
-#}
{% macro source_or_empty(source_name, table_name, empty_columns) -%}
    {%- set relation = source(source_name, table_name) -%}
    {%- if execute and adapter.get_relation(relation.database, relation.schema, relation.identifier) is none -%}
        (select {{ empty_columns | join(', ') }} where false) as {{ adapter.quote(table_name) }}
    {%- else -%}
        {{ relation }}
    {%- endif -%}
{%- endmacro %}
