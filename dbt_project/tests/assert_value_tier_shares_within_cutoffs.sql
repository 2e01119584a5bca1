-- Tier shares never exceed their cut-offs (ties go to the lower tier, never
-- split), and a higher tier never earns less than a lower one.
with

customers as (
    select * from {{ ref('dim_customers') }}
    where has_orders
),

-- one pass over the customers: the shares and the ranges both come from the
-- four tiers' counts (reading the customers twice made PostgreSQL keep all of
-- them in a temporary store: 1.25 s at 10M orders, 0.3 s this way)
tier_ranges as (
    select
        value_tier,
        count(*) as customers,
        min(trailing_12m_revenue) as min_revenue,
        max(trailing_12m_revenue) as max_revenue
    from customers
    group by 1
),

shares as (
    select
        coalesce(sum(customers) filter (where value_tier = 'A'), 0)
            / nullif(sum(customers), 0) as share_a,
        coalesce(sum(customers) filter (where value_tier in ('A', 'B')), 0)
            / nullif(sum(customers), 0) as share_ab,
        coalesce(sum(customers) filter (where value_tier in ('A', 'B', 'C')), 0)
            / nullif(sum(customers), 0) as share_abc
    from tier_ranges
),

share_violations as (
    select
        'share above cut-off' as problem,
        null::text as value_tier
    from shares
    where share_a > {{ var('tier_a_share') }}
        or share_ab > {{ var('tier_a_share') }} + {{ var('tier_b_share') }}
        or share_abc > {{ var('tier_a_share') }} + {{ var('tier_b_share') }} + {{ var('tier_c_share') }}
),

order_violations as (
    select
        'tier earns less than the next one' as problem,
        higher.value_tier
    from tier_ranges as higher
    inner join tier_ranges as lower
        on lower.value_tier > higher.value_tier
    where higher.min_revenue <= lower.max_revenue
),

final as (
    select * from share_violations
    union all
    select * from order_violations
)

select * from final
