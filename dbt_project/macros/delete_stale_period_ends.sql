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

    The table holds customers x period ends rows (tens of millions at a million
    customers) but only a few dozen period ends, and each run stores whole
    period ends computed with one settings_key. So the tests above are made per
    period end, not per row: the stored period ends are read off the index that
    leads with the period end (a loose index scan, one probe per end, as
    PostgreSQL has no skip scan for min/next), a probe row of each gives its
    settings_key, and the delete finds the stale ends' rows through the same
    index: a normal week reads a few index pages and the one or two period
    ends it drops, where a per-row filter read the whole stored history.

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
                 where {{ period }}_index < {{ var('kpi_history_' ~ period ~ 's') }}) as reported_ends
            {%- endset -%}
        {%- endif -%}
        {%- set stored_columns = adapter.get_columns_in_relation(this) | map(attribute='name') | list if execute else [] -%}
        {%- set column = period_end_column -%}
        delete from {{ this }}
        {%- if 'settings_key' not in stored_columns %}
        where true
        {%- else %}
        where {{ column }} = any(array(
            with recursive stored_ends as (
                (select {{ column }} as period_end from {{ this }} order by 1 limit 1)
                union all
                select (
                    select later.{{ column }} from {{ this }} as later
                    where later.{{ column }} > stored_ends.period_end
                    order by 1 limit 1
                )
                from stored_ends
                where stored_ends.period_end is not null
            )
            select period_end
            from stored_ends
            where period_end = {{ as_of() }}
                or (
                    select probe.settings_key from {{ this }} as probe
                    where probe.{{ column }} = stored_ends.period_end
                    limit 1
                ) is distinct from {{ period_settings_key() }}
                or period_end > (
                    select min(ordered_at)
                    from {{ orders }}
                    where batch_id > (select coalesce(max(loaded_through), 0) from {{ this }})
                )
                or period_end < (select min({{ column }}) from {{ period_ends }})
                or (
                    period_end < {{ as_of() }}
                    and period_end not in (select {{ column }} from {{ period_ends }})
                )
        ))
        {%- endif %}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
