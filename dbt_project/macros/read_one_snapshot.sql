{#-
    First pre-hook of every model kept incrementally with `loaded_through`
    (the order steps, the stage histories, the stage flows, the 80/20 check).
    Under PostgreSQL's default READ COMMITTED each statement of the model's
    transaction sees raw as of its own start: the pre-hook's delete would find
    the changed customers (or period ends) as of one moment and the insert
    compute them, and record the highest batch, as of a later one. A daily
    ingest committing in between would then count as seen although its
    changes were never computed, and no later run would pick them up.
    REPEATABLE READ gives the whole transaction one snapshot (taken at its
    first query, so this must run before any). The model writes only its own
    table, so the snapshot costs no serialization failures; an ingest that
    commits meanwhile is simply new to the next run.
-#}
{% macro read_one_snapshot() -%}
    set transaction isolation level repeatable read
{%- endmacro %}
