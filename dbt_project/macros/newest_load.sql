{#-
    The sources' freshness query (their loaded_at_query): when the newest load
    batch a raw table holds was merged. Every row a batch merges gets the same
    _loaded_at (the merge transaction's now()), and batch ids grow with time,
    so this is max(_loaded_at) read by one probe of the _batch_id index
    instead of a scan of the whole table (10M orders) on every weekly run.
    Batches of one entity merge one at a time (the loader locks the table), so
    only a batch that was landed before, and merged after, a later-numbered one
    could make this older than max(_loaded_at): by the minutes they overlapped.
-#}
{% macro newest_load(raw_relation) -%}
    select _loaded_at from {{ raw_relation }} order by _batch_id desc limit 1
{%- endmacro %}
