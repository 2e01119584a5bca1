{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ delete_stale_period_ends('week_end_at', ref('int_weeks_enumerated'), ref('stg_shop__orders')) }}",
        indexes=[
            {'columns': ['week_end_at', 'customer_id'], 'unique': true},
            {'columns': ['loaded_through']},
        ],
    )
}}
-- The churn stage of every customer with orders, kept per week end. A run computes
-- only the week ends of its window that are not stored yet (after its pre-hook
-- dropped the one ending at as_of and those that orders loaded since could
-- change), so a normal week adds a period or two instead of recomputing the
-- whole window, and the result equals a full recompute (--full-refresh). The stage itself is defined once, in
-- macros/customer_stages.sql; only orders placed before each week end count.
with

orders as (
    select * from {{ ref('stg_shop__orders') }}
),

weeks as (
    select * from {{ ref('int_weeks_enumerated') }}
),

weeks_to_build as (
    select *
    from weeks
    {% if is_incremental() -%}
    where not exists (
        select from {{ this }} as stored
        where stored.week_end_at = weeks.week_end_at
    )
    {%- endif %}
),

staged as (
    {{ customer_stages('weeks_to_build', 'week_index', 'week_end_at', 'orders') }}
),

final as (
    select
        customer_id,
        week_end_at,
        first_order_at,
        last_order_at,
        orders_count,
        net_revenue,
        trailing_12m_revenue,
        recency_days,
        expected_gap_days,
        gap_ratio,
        churn_stage,
        -- the raw load batches this computation saw (see delete_stale_period_ends)
        (select coalesce(max(batch_id), 0) from orders) as loaded_through
    from staged
)

select * from final
