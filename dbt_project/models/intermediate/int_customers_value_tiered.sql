{{ config(materialized='table', pre_hook="{{ set_local_work_mem() }}") }}
-- A table, not a view: its data tests and dim_customers would each recompute the
-- cumulative revenue share over every customer (as the RFM view's tests did).
-- Value tier as of as_of: customers with orders ranked by trailing net revenue,
-- best first; the cumulative share of customers decides the tier, ties share it.
with

staged_weekly as (
    select * from {{ ref('int_customers_staged_weekly') }}
),

-- read twice below: materialized once
current_customers as materialized (
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

-- the cumulative share of customers at each distinct trailing revenue, best
-- first, and its tier: worked out per value and joined back, instead of a window
-- over every customer (its query at 10M orders, 2026-12-07: 2.3 -> 1.9 s, equal
-- rows)
tiers as (
    select
        value as trailing_12m_revenue,
        share as revenue_share_rank,
        case
            when value <= 0 then 'D'
            when share <= {{ var('tier_a_share') }} then 'A'
            when share <= {{ var('tier_a_share') }} + {{ var('tier_b_share') }} then 'B'
            when share
                <= {{ var('tier_a_share') }} + {{ var('tier_b_share') }} + {{ var('tier_c_share') }} then 'C'
            else 'D'
        end as value_tier
    from (
        {{ cumulative_shares('current_customers', 'trailing_12m_revenue', order='desc') | indent(8) }}
    ) as shares
),

-- a left join: a customer without a trailing revenue would keep their row, with
-- no tier, and fail the not-null test instead of leaving the table unnoticed
final as (
    select
        current_customers.customer_id,
        current_customers.trailing_12m_revenue,
        tiers.revenue_share_rank,
        tiers.value_tier
    from current_customers
    left join tiers
        on current_customers.trailing_12m_revenue = tiers.trailing_12m_revenue
)

select * from final
