{#-
    Pre-hook of a stage history keyed on its period ends (see
    int_customer_stage_history_weekly): before the run adds the period ends it
    does not have yet, delete the rows it must not keep:
      * the period ending at as_of, so a re-run of the same week recomputes it;
      * every period end after the earliest order that raw received (or saw
        change: a refund, a cancellation) since the history was last brought up
        to date (`loaded_through`, the highest load batch its runs had seen):
        those stages could differ now, so they are recomputed, and the history
        stays equal to a full recompute. Late changes to old orders make a run
        recompute further back; a normal week recomputes one or two periods;
      * period ends inside this run's window that are not among its period ends
        (a partial month computed by an earlier run, as of an earlier date);
      * period ends older than the window (nothing reads them; a backfill that
        needs them again recomputes them).
    Rows of period ends after as_of (kept by a later run during a backfill) stay.
-#}
{% macro delete_stale_period_ends(period_end_column, period_ends, orders) -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where {{ period_end_column }} = {{ as_of() }}
            or {{ period_end_column }} > (
                select min(ordered_at)
                from {{ orders }}
                where batch_id > (select coalesce(max(loaded_through), 0) from {{ this }})
            )
            or {{ period_end_column }} < (select min({{ period_end_column }}) from {{ period_ends }})
            or (
                {{ period_end_column }} < {{ as_of() }}
                and {{ period_end_column }} not in (select {{ period_end_column }} from {{ period_ends }})
            )
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
