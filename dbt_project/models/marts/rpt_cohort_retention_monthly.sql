-- Monthly cohorts by first completed order: for each month since the first,
-- the share of the cohort that ordered again and their revenue relative to
-- the first month. Only months that start before as_of. The computation is
-- macros/cohort_retention.sql, shared with rpt_cohort_retention_weekly.
with

order_steps as (
    select * from {{ ref('int_customer_order_steps') }}
),

retention as (
    {{ cohort_retention('order_steps', 'month', var('cohort_history_months')) }}
),

final as (
    select
        cohort_start::date as cohort_month,
        periods_since_first::integer as months_since_first,
        cohort_size::integer as cohort_size,
        retained_customers::integer as retained_customers,
        round(retained_customers::numeric / cohort_size, 4)::numeric(10, 4) as customer_retention,
        revenue::numeric(18, 2) as revenue,
        round(revenue / nullif(first_period_revenue, 0), 4)::numeric(12, 4) as revenue_retention
    from retention
)

select * from final
