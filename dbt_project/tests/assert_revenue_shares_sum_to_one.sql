-- dim_customers.revenue_share splits the base's trailing revenue: the shares
-- sum to 1 (up to the rounding of each share to 10 decimals) whenever anyone
-- has trailing revenue, and are null otherwise.
with

customers as (
    select * from {{ ref('dim_customers') }}
),

totals as (
    select
        sum(revenue_share) as total_share,
        sum(trailing_12m_revenue) as total_revenue,
        count(*) filter (where revenue_share is null) as null_shares,
        count(*) as customers
    from customers
),

final as (
    select *
    from totals
    where (total_revenue > 0 and (abs(total_share - 1) > 0.000001 or null_shares > 0))
        or (total_revenue <= 0 and null_shares != customers)
)

select * from final
