{#-
    Cohort retention, written once for monthly and weekly cohorts.

    Cohort = the business-time-zone calendar `grain` ('month', or 'week' = ISO week starting
    Monday) of a customer's first completed order; cohorts whose period starts
    within `history_periods` grains before as_of. For each cohort and each
    period since it that starts before as_of: the customers of the cohort with a
    completed order in that period and their net revenue. `order_steps` is a
    relation shaped like int_customer_order_steps (completed orders, each with
    its customer's first order time), so only the orders of customers whose
    first order falls in the reported cohorts are read, not all history.

    Returns a query with cohort_start, periods_since_first, cohort_size,
    retained_customers, revenue, first_period_revenue (unrounded).
-#}
{% macro cohort_retention(order_steps, grain, history_periods) -%}
    with

    -- the orders of customers who could belong to a reported cohort: their first
    -- order is at most one grain before the oldest cohort start (a superset, the
    -- cohorts below apply the exact bound), and all of them before as_of
    completed_orders as (
        select
            customer_id,
            date_trunc('{{ grain }}', ordered_date)::date as order_period,
            net_amount
        from {{ order_steps }}
        where ordered_at < {{ as_of() }}
            and first_order_at >= {{ shift_in_business_tz(
                as_of(),
                'make_interval(' ~ grain ~ 's => -' ~ (history_periods + 1) ~ ')'
            ) }}
    ),

    first_periods as (
        select
            customer_id,
            min(order_period) as cohort_start
        from completed_orders
        group by 1
    ),

    -- cohorts whose first period starts within the cohort window before as_of
    cohorts as (
        select
            cohort_start,
            count(*) as cohort_size
        from first_periods
        where cohort_start::timestamp at time zone {{ business_timezone() }} >= {{ shift_in_business_tz(
            as_of(),
            'make_interval(' ~ grain ~ 's => -' ~ history_periods ~ ')'
        ) }}
        group by 1
    ),

    periods as (
        select
            cohorts.cohort_start,
            cohorts.cohort_size,
            period_start::date as period_start,
            {% if grain == 'month' -%}
            (
                extract(year from age(period_start, cohorts.cohort_start)) * 12
                + extract(month from age(period_start, cohorts.cohort_start))
            )::integer
            {%- elif grain == 'week' -%}
            ((period_start::date - cohorts.cohort_start) / 7)::integer
            {%- else -%}
            {{ exceptions.raise_compiler_error("cohort_retention: grain must be 'month' or 'week'") }}
            {%- endif %} as periods_since_first
        from cohorts
        cross join lateral generate_series(
            cohorts.cohort_start::timestamp,
            ({{ as_of() }} at time zone {{ business_timezone() }}) - interval '1 microsecond',
            interval '1 {{ grain }}'
        ) as period_start
    ),

    -- customer-periods de-duplicated before counting (faster than count distinct)
    customer_periods as (
        select
            customer_id,
            order_period,
            sum(net_amount) as revenue
        from completed_orders
        group by 1, 2
    ),

    activity as (
        select
            first_periods.cohort_start,
            customer_periods.order_period,
            count(*) as retained_customers,
            sum(customer_periods.revenue) as revenue
        from customer_periods
        inner join first_periods
            on customer_periods.customer_id = first_periods.customer_id
        group by 1, 2
    ),

    retention as (
        select
            periods.cohort_start,
            periods.periods_since_first,
            periods.cohort_size,
            coalesce(activity.retained_customers, 0) as retained_customers,
            coalesce(activity.revenue, 0) as revenue
        from periods
        left join activity
            on periods.cohort_start = activity.cohort_start
            and periods.period_start = activity.order_period
    )

    select
        *,
        first_value(revenue) over (
            partition by cohort_start order by periods_since_first
        ) as first_period_revenue
    from retention
{%- endmacro %}
