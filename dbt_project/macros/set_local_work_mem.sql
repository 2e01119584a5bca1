{#-
    Pre-hook of the stage histories and the stage flows: their window sort and
    median joins go over every completed order (the flows' hash joins over
    every customer at each period end), and at PostgreSQL's default work_mem
    (4MB) each of them spills to disk. `set local` lasts for the model's transaction only, so
    no other model or session sees it.
-#}
{% macro set_local_work_mem() -%}
    set local work_mem = '{{ var("stage_history_work_mem") }}'
{%- endmacro %}
