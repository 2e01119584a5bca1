-- Weekly cohorts by first completed order (ISO weeks, Monday to Monday, business time zone):
-- for the cohorts of the last cohort_history_weeks weeks, the share of the
-- cohort that ordered in each week since the first and their revenue relative
-- to the first week. Only weeks that start before as_of. Same computation as
-- the monthly cohorts (macros/cohort_retention.sql).
with

order_steps as (
    select * from {{ ref('int_customer_order_steps') }}
),

retention as (
    {{ cohort_retention('order_steps', 'week', var('cohort_history_weeks')) }}
),

final as (
    select
        to_char(cohort_start, 'IYYY-"W"IW')::text as cohort_iso_week,
        cohort_start::date as cohort_week,
        periods_since_first::integer as weeks_since_first,
        cohort_size::integer as cohort_size,
        retained_customers::integer as retained_customers,
        round(retained_customers::numeric / cohort_size, 4)::numeric(10, 4) as customer_retention,
        revenue::numeric(18, 2) as revenue,
        round(revenue / nullif(first_period_revenue, 0), 4)::numeric(12, 4) as revenue_retention
    from retention
)

select * from final
