{#-
    The bodies of the stage-history models, written once for weeks and months.

    stage_history(period, period_ends): the select of
    int_customer_stage_history_<grain>: the stages (macros/customer_stages.sql)
    at the period ends of `period_ends` that the stored history does not have
    yet (all of them on a first or --full-refresh build), with the highest
    load batch the order steps it read reflect (`loaded_through`, read by the
    pre-hook delete_stale_period_ends on the next run).

    stages_in_window(period, history, period_ends): the select of
    int_customers_staged_<grain>: the stored stages at this run's period ends,
    with the run's `<period>_index` attached.
-#}
{% macro stage_history(period, period_ends) -%}
    with

    periods as (
        select * from {{ period_ends }}
    ),

    periods_to_build as (
        select *
        from periods
        {% if is_incremental() -%}
        where not exists (
            select from {{ this }} as stored
            where stored.{{ period }}_end_at = periods.{{ period }}_end_at
        )
        {%- endif %}
    ),

    staged as (
        {{ customer_stages(
            'periods_to_build', period ~ '_index', period ~ '_end_at', ref('int_customer_order_steps')
        ) }}
    ),

    final as (
        select
            staged.*,
            {{ period_bookkeeping_columns(ref('int_customer_order_steps')) }}
        from staged
    )

    select * from final
    {%- if is_incremental() %}
    -- appended in the order of the table's unique index (period end, customer):
    -- each new row lands on the index page the previous one filled, instead of
    -- on a random page of an index much larger than the server's buffers. (A
    -- first build creates the index after the rows, by sorting: no order here.)
    order by {{ period }}_end_at, customer_id
    {%- endif %}
{%- endmacro %}


{% macro stages_in_window(period, history, period_ends) -%}
    with

    history as (
        select * from {{ history }}
    ),

    periods as (
        select * from {{ period_ends }}
    ),

    final as (
        select
            history.customer_id,
            periods.{{ period }}_index,
            history.{{ period }}_end_at,
            history.first_order_at,
            history.last_order_at,
            history.orders_count,
            history.net_revenue,
            history.trailing_12m_revenue,
            history.recency_days,
            history.expected_gap_days,
            history.gap_ratio,
            history.churn_stage
        from history
        inner join periods
            on history.{{ period }}_end_at = periods.{{ period }}_end_at
    )

    select * from final
{%- endmacro %}
