-- Tier shares never exceed their cut-offs (ties go to the lower tier, never
-- split), and a higher tier never earns less than a lower one.
with

customers as (
    select * from {{ ref('dim_customers') }}
    where has_orders
),

shares as (
    select
        count(*) filter (where value_tier = 'A')::numeric / nullif(count(*), 0) as share_a,
        count(*) filter (where value_tier in ('A', 'B'))::numeric / nullif(count(*), 0) as share_ab,
        count(*) filter (where value_tier in ('A', 'B', 'C'))::numeric / nullif(count(*), 0) as share_abc
    from customers
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

tier_ranges as (
    select
        value_tier,
        min(trailing_12m_revenue) as min_revenue,
        max(trailing_12m_revenue) as max_revenue
    from customers
    group by 1
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
