{#-
    The highest load batch raw holds for an entity, read from the raw table
    itself (`raw_relation`, a source) rather than through its staging view.
    PostgreSQL answers max() of an indexed column with one probe of the index,
    but not through a view written with CTEs, as the staging views are: there
    it reads the whole _batch_id index (0.5-0.8 s at 10M orders, on every run).
-#}
{% macro highest_loaded_batch(raw_relation) -%}
    (select coalesce(max(_batch_id), 0) from {{ raw_relation }})
{%- endmacro %}
