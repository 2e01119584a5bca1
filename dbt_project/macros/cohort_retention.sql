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

    One pass over those steps, grouped by (cohort, period) only: each step
    knows its customer's cohort (the period of first_order_at), whether it is
    the customer's first order (orders_count = 1: the cohort size counts
    those) and whether it is their last order of its period before as_of (the
    next order, next_ordered_at, is in a later period, at or after as_of, or
    there is none: retained customers count those, one per customer and
    period). Grouping the steps by customer and period first, and joining them
    to each customer's first period, took 10-11 s of the monthly cohorts at
    10M orders (4.8M steps, 2.9M customer-periods, 1.1M customers).

    Returns a query with cohort_start, periods_since_first, cohort_size,
    retained_customers, revenue, first_period_revenue (unrounded).
-#}
{% macro cohort_retention(order_steps, grain, history_periods) -%}
    {%- if grain not in ('month', 'week') -%}
        {{ exceptions.raise_compiler_error("cohort_retention: grain must be 'month' or 'week'") }}
    {%- endif -%}
    with

    -- the orders of customers who could belong to a reported cohort: their first
    -- order is at most one grain before the oldest cohort start (a superset, the
    -- cohorts below apply the exact bound), and all of them before as_of
    completed_orders as (
        select
            date_trunc('{{ grain }}', ordered_date)::date as order_period,
            date_trunc(
                '{{ grain }}', (first_order_at at time zone {{ business_timezone() }})::date
            )::date as cohort_start,
            orders_count = 1 as is_first_order,
            next_ordered_at,
            net_amount
        from {{ order_steps }}
        where ordered_at < {{ as_of() }}
            and first_order_at >= {{ shift_in_business_tz(
                as_of(),
                'make_interval(' ~ grain ~ 's => -' ~ (history_periods + 1) ~ ')'
            ) }}
    ),

    -- per cohort and period: the cohort's new customers (their first order),
    -- the customers who ordered (each one's last order of the period before
    -- as_of) and the revenue
    activity as (
        select
            cohort_start,
            order_period,
            count(*) filter (where is_first_order) as first_orders,
            count(*) filter (
                where next_ordered_at is null
                    or next_ordered_at >= {{ as_of() }}
                    or (next_ordered_at at time zone {{ business_timezone() }})::date
                        >= order_period + interval '1 {{ grain }}'
            ) as retained_customers,
            sum(net_amount) as revenue
        from completed_orders
        group by 1, 2
    ),

    -- cohorts whose first period starts within the cohort window before as_of
    cohorts as (
        select
            cohort_start,
            sum(first_orders) as cohort_size
        from activity
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
            {%- else -%}
            ((period_start::date - cohorts.cohort_start) / 7)::integer
            {%- endif %} as periods_since_first
        from cohorts
        cross join lateral generate_series(
            cohorts.cohort_start::timestamp,
            ({{ as_of() }} at time zone {{ business_timezone() }}) - interval '1 microsecond',
            interval '1 {{ grain }}'
        ) as period_start
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
