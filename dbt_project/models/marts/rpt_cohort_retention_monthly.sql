-- Monthly cohorts by first completed order: for each month since the first,
-- the share of the cohort that ordered again and their revenue relative to
-- the first month. Only months that start before as_of.
with

orders as (
    select * from {{ ref('stg_shop__orders') }}
),

completed_orders as (
    select
        customer_id,
        date_trunc('month', ordered_date)::date as order_month,
        net_amount
    from orders
    where is_completed
        and ordered_at < {{ as_of() }}
),

first_months as (
    select
        customer_id,
        min(order_month) as cohort_month
    from completed_orders
    group by 1
),

-- cohorts whose first month starts within the cohort window before as_of
cohorts as (
    select
        cohort_month,
        count(*) as cohort_size
    from first_months
    where cohort_month::timestamp at time zone 'utc' >= {{ shift_in_utc(
        as_of(),
        'make_interval(months => -' ~ var('cohort_history_months') ~ ')'
    ) }}
    group by 1
),

periods as (
    select
        cohorts.cohort_month,
        cohorts.cohort_size,
        period_month::date as period_month,
        (
            extract(year from age(period_month, cohorts.cohort_month)) * 12
            + extract(month from age(period_month, cohorts.cohort_month))
        )::integer as months_since_first
    from cohorts
    cross join lateral generate_series(
        cohorts.cohort_month::timestamp,
        ({{ as_of() }} at time zone 'utc') - interval '1 microsecond',
        interval '1 month'
    ) as period_month
),

activity as (
    select
        first_months.cohort_month,
        completed_orders.order_month,
        count(distinct completed_orders.customer_id) as retained_customers,
        sum(completed_orders.net_amount) as revenue
    from completed_orders
    inner join first_months
        on completed_orders.customer_id = first_months.customer_id
    group by 1, 2
),

retention as (
    select
        periods.cohort_month,
        periods.months_since_first,
        periods.cohort_size,
        coalesce(activity.retained_customers, 0) as retained_customers,
        coalesce(activity.revenue, 0) as revenue
    from periods
    left join activity
        on periods.cohort_month = activity.cohort_month
        and periods.period_month = activity.order_month
),

with_first_period as (
    select
        *,
        first_value(revenue) over (
            partition by cohort_month order by months_since_first
        ) as first_period_revenue
    from retention
),

final as (
    select
        cohort_month::date as cohort_month,
        months_since_first::integer as months_since_first,
        cohort_size::integer as cohort_size,
        retained_customers::integer as retained_customers,
        round(retained_customers::numeric / cohort_size, 4)::numeric(10, 4) as customer_retention,
        revenue::numeric(18, 2) as revenue,
        round(revenue / nullif(first_period_revenue, 0), 4)::numeric(12, 4) as revenue_retention
    from with_first_period
)

select * from final
