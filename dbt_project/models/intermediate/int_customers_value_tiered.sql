{{ config(materialized='table', pre_hook="{{ set_local_work_mem() }}") }}
-- A table, not a view: its data tests and dim_customers would each recompute the
-- cumulative revenue share over every customer (as the RFM view's tests did).
-- Value tier as of as_of: customers with orders ranked by trailing net revenue,
-- best first; the cumulative share of customers decides the tier, ties share it.
with

staged_weekly as (
    select * from {{ ref('int_customers_staged_weekly') }}
),

current_customers as (
    select
        customer_id,
        trailing_12m_revenue
    from staged_weekly
    where week_index = 0
        -- the same slice (week 0 ends at as_of), as a constant the planner takes to
        -- the history's index: through the view alone it scanned every stored week
        -- end (20M rows at 10M orders) to keep one
        and week_end_at = {{ as_of() }}
),

ranked as (
    select
        *,
        {{ cumulative_share('trailing_12m_revenue desc') }} as revenue_share_rank
    from current_customers
),

tiered as (
    select
        *,
        case
            when trailing_12m_revenue <= 0 then 'D'
            when revenue_share_rank <= {{ var('tier_a_share') }} then 'A'
            when revenue_share_rank <= {{ var('tier_a_share') }} + {{ var('tier_b_share') }} then 'B'
            when revenue_share_rank
                <= {{ var('tier_a_share') }} + {{ var('tier_b_share') }} + {{ var('tier_c_share') }} then 'C'
            else 'D'
        end as value_tier
    from ranked
),

final as (
    select * from tiered
)

select * from final
