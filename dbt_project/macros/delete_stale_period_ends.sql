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
        needs them again recomputes them);
      * every row computed with other business vars (`settings_key`, see
        macros/period_settings_key.sql), and every row of a table stored before
        it had that column (it is added by on_schema_change: append_new_columns).
    Rows of period ends after as_of (kept by a later run during a backfill) stay.

    With `reported_only` (the stage flows and the revenue concentration, which
    keep only the reported periods), the window is the reported periods of
    `period_ends` (`<period>_index < kpi_history_<period>s`): the oldest period
    end, only the start state of the oldest reported period, is dropped too.
-#}
{% macro delete_stale_period_ends(period_end_column, period_ends, orders, reported_only=false) -%}
    {%- if is_incremental() -%}
        {%- if reported_only -%}
            {%- set period = period_end_column.replace('_end_at', '') -%}
            {%- set period_ends -%}
                (select * from {{ period_ends }}
                 where {{ period }}_index < {{ var('kpi_history_' ~ period ~ 's') }})
            {%- endset -%}
        {%- endif -%}
        {%- set stored_columns = adapter.get_columns_in_relation(this) | map(attribute='name') | list if execute else [] -%}
        delete from {{ this }}
        where {{ period_end_column }} = {{ as_of() }}
            {%- if 'settings_key' in stored_columns %}
            or settings_key is distinct from {{ period_settings_key() }}
            {%- else %}
            or true
            {%- endif %}
            or {{ period_end_column }} > (
                select min(ordered_at)
                from {{ orders }}
                where batch_id > (select coalesce(max(loaded_through), 0) from {{ this }})
            )
            or {{ period_end_column }} < (select min({{ period_end_column }}) from {{ period_ends }} as window_ends)
            or (
                {{ period_end_column }} < {{ as_of() }}
                and {{ period_end_column }} not in (select {{ period_end_column }} from {{ period_ends }} as window_ends)
            )
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
