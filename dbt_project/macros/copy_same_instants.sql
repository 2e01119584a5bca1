{#-
    Pre-hook of int_customer_stage_history_monthly, after delete_stale_period_ends:
    store the period ends it must build that the other grain's stage history
    (`same_instants`, the weekly one, built earlier in the run) already holds,
    by copying them, so the model's body (macros/stage_history.sql), which
    builds only the ends not stored yet, skips them.

    Which ends: a complete month that begins on a Monday ends at a week end
    (the running month, ending at as_of, is not stored at all: see
    stages_to_date in macros/stage_history.sql). customer_stages is the one
    definition of a stage, and the stage at an instant depends on nothing but
    the instant, the order steps and the business vars. So an end is copied
    only
      * before as_of (the body builds no later end, and none at as_of),
      * when that history has seen every order raw holds: its highest
        loaded_through is raw's highest batch. Otherwise (this model selected
        alone after a load, a load committed since, a week whose loads only
        removed orders, so the steps wrote no row to carry the batch) nothing
        is copied and the body computes every end;
      * when the end's rows there carry this run's settings_key (other --vars:
        computed instead).
    The rows get this run's bookkeeping columns, as the body's would.

    Why a pre-hook, not a branch of the body: dbt's incremental materialization
    writes the body's rows to a temporary table and then inserts them; a copy
    inserted here is written once. At 10M orders a month end took 17-21 s
    computed, 11-14 s copied through the body, and less written here.

    Every relation is read through `(select * from ...)`: under `dbt run --empty`
    dbt renders a ref as an already aliased subquery.

    Incremental runs only, and only into a table that has every column it
    writes (an older table gets them from on_schema_change after the hooks;
    its ends are computed). A full build computes every end.
-#}
{% macro copy_same_instants(period, period_ends, same_instants, order_steps, orders) -%}
    {#- what customer_stages computes, copied as it is; the keys and the bookkeeping
        columns are written separately -#}
    {%- set stage_columns = stage_history_columns(with_bookkeeping=false) -%}
    {%- set columns = ['customer_id', period ~ '_end_at'] + stage_columns + ['loaded_through', 'settings_key'] -%}
    {%- set stored_columns = adapter.get_columns_in_relation(this) | map(attribute='name') | list
        if execute and is_incremental() else [] -%}
    {%- if is_incremental() and columns | reject('in', stored_columns) | list | length == 0 -%}
        {%- set other = 'week' if period == 'month' else 'month' -%}
        insert into {{ this }} ({{ columns | join(', ') }})
        with

        periods_to_copy as (
            select periods.{{ period }}_end_at as period_end_at
            from (select * from {{ period_ends }}) as periods
            where periods.{{ period }}_end_at < {{ as_of() }}
                and not exists (
                    select from {{ this }} as stored
                    where stored.{{ period }}_end_at = periods.{{ period }}_end_at
                )
                and (select max(loaded_through) from {{ same_instants }})
                    >= {{ highest_loaded_batch(orders) }}
                -- a probe row of the end (each end is stored with one settings_key),
                -- read off the other table's unique index (end, customer): as an
                -- `exists` with the key in its filter, it was planned as a scan
                -- that stops at the first match, through every other end first
                -- when that table is laid out end by end
                and (
                    select other_grain.settings_key
                    from (select * from {{ same_instants }}) as other_grain
                    where other_grain.{{ other }}_end_at = periods.{{ period }}_end_at
                    order by other_grain.customer_id
                    limit 1
                ) = {{ period_settings_key() }}
        )

        select
            copied.customer_id,
            periods_to_copy.period_end_at,
            {%- for column in stage_columns %}
            copied.{{ column }},
            {%- endfor %}
            {{ period_bookkeeping_columns(order_steps) }}
        from periods_to_copy
        -- lateral: one end read through the other table's unique index (a join
        -- on a CTE was planned as a scan of every stored end)
        cross join lateral (
            select other_grain.*
            from (select * from {{ same_instants }}) as other_grain
            where other_grain.{{ other }}_end_at = periods_to_copy.period_end_at
        ) as copied
        -- appended in the order of this table's unique index, as the body's rows
        order by periods_to_copy.period_end_at, copied.customer_id
    {%- else -%}
        select 'a full build computes every period end' as copy_same_instants
    {%- endif -%}
{%- endmacro %}
