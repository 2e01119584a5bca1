{#-
    Fails with one row per listed column that holds nulls, and how many rows.
    One scan of the model for all the columns, where a not_null test per column
    reads the whole table once each (dim_customers at 180k customers: its
    thirteen not_null tests took 0.69 s together, this one 0.09 s; each scan
    grows with the table). The failure names columns and counts, never a
    row's values: the wide marts hold contact details.
-#}
{% test not_null_columns(model, columns) %}

with

rows_with_nulls as (
    select {{ columns | join(', ') }}
    from {{ model }}
    where {% for column in columns %}{{ column }} is null{% if not loop.last %} or {% endif %}{% endfor %}
)

select
    null_columns.column_name,
    count(*) as null_rows
from rows_with_nulls
cross join lateral (
    values
    {%- for column in columns %}
        ('{{ column }}', rows_with_nulls.{{ column }} is null){% if not loop.last %},{% endif %}
    {%- endfor %}
) as null_columns (column_name, is_null)
where null_columns.is_null
group by null_columns.column_name

{% endtest %}
