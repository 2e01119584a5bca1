-- The latest week's top20_revenue_share, recomputed from dim_customers (the
-- same customers as of as_of, ranked by trailing revenue), agrees to 4 decimals,
-- and so does the current month's.
with

customers as (
    select * from {{ ref('dim_customers') }}
),

weekly_kpis as (
    select * from {{ ref('rpt_weekly_kpis') }}
),

monthly_kpis as (
    select * from {{ ref('rpt_monthly_kpis') }}
),

ranked as (
    select
        trailing_12m_revenue,
        row_number() over (order by trailing_12m_revenue desc) as revenue_rank,
        count(*) over () as ranked_customers
    from customers
    where trailing_12m_revenue > 0
),

expected as (
    select
        round(
            sum(trailing_12m_revenue) filter (
                where revenue_rank <= ceil(ranked_customers * {{ var('top_customers_share') }})
            ) / sum(trailing_12m_revenue),
            4
        ) as top20_revenue_share
    from ranked
),

latest as (
    select 'week' as period, top20_revenue_share
    from weekly_kpis
    where week_end = ({{ as_of() }} at time zone {{ business_timezone() }})::date
    union all
    select 'month', top20_revenue_share
    from monthly_kpis
    where month_end = ({{ as_of() }} at time zone {{ business_timezone() }})::date
),

final as (
    select
        latest.period,
        latest.top20_revenue_share,
        expected.top20_revenue_share as expected_share
    from latest
    cross join expected
    where latest.top20_revenue_share is distinct from expected.top20_revenue_share
)

select * from final
