{#-
    Fails with one row per (column, value) outside that column's accepted
    values, and how many rows hold it: dbt's accepted_values for several
    columns in one scan of the model, where one accepted_values test per
    column reads the whole table once each (dim_customers at 1.8M customers:
    four such tests took about 0.7 s each). Nulls pass, as with
    accepted_values (a not-null rule is a test of its own).

    `columns`: a mapping column -> list of accepted values. Values are
    compared as text (the column cast to text), so 1 and '1' both accept an
    integer 1.
-#}
{% test accepted_values_columns(model, columns) %}

{%- set rules = [] -%}
{%- for column, values in columns.items() -%}
    {%- set quoted = [] -%}
    {%- for value in values -%}
        {%- do quoted.append("'" ~ (value | string).replace("'", "''") ~ "'") -%}
    {%- endfor -%}
    {%- do rules.append((column, column ~ '::text not in (' ~ quoted | join(', ') ~ ')')) -%}
{%- endfor %}

with

rows_outside as (
    select {{ columns.keys() | join(', ') }}
    from {{ model }}
    where {% for column, outside in rules %}{{ outside }}{% if not loop.last %} or {% endif %}{% endfor %}
)

select
    outside_values.column_name,
    outside_values.value,
    count(*) as n_records
from rows_outside
cross join lateral (
    values
    {%- for column, outside in rules %}
        ('{{ column }}', rows_outside.{{ column }}::text, coalesce(rows_outside.{{ outside }}, false)){% if not loop.last %},{% endif %}
    {%- endfor %}
) as outside_values (column_name, value, is_outside)
where outside_values.is_outside
group by outside_values.column_name, outside_values.value

{% endtest %}
