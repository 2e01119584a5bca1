{#-
    The one definition of a customer's churn stage, as of each period end of
    `period_ends` (a CTE or relation with columns `period_key` and
    `period_end_at`). Only completed orders placed before each period end
    count, so a past period recomputed later gives the same answer.
    `orders` is a CTE or relation shaped like stg_shop__orders.

    Returns a query (usable as a CTE body) with one row per customer with at
    least one completed order before the period end: customer_id, the period
    key, period_end_at, first_order_at, last_order_at, orders_count,
    net_revenue, trailing_12m_revenue, recency_days, expected_gap_days,
    gap_ratio, churn_stage. The weekly history (int_customers_staged_weekly)
    and the monthly one (int_customers_staged_monthly) both call it, so the
    stage of a week end and of a month end can never disagree.
-#}
{% macro customer_stages(period_ends, period_key, period_end_at, orders) -%}
    with

    completed_orders as (
        select
            customer_id,
            ordered_at,
            ordered_date,
            net_amount
        from {{ orders }}
        where is_completed
    ),

    orders_before_period_end as (
        select
            period_ends.{{ period_key }} as period_key,
            period_ends.{{ period_end_at }} as period_end_at,
            completed_orders.customer_id,
            completed_orders.ordered_at,
            completed_orders.ordered_date,
            completed_orders.net_amount
        from {{ period_ends }} as period_ends
        inner join completed_orders
            on completed_orders.ordered_at < period_ends.{{ period_end_at }}
    ),

    order_totals as (
        select
            period_key,
            period_end_at,
            customer_id,
            min(ordered_at) as first_order_at,
            max(ordered_at) as last_order_at,
            count(*) as orders_count,
            sum(net_amount) as net_revenue,
            coalesce(
                sum(net_amount) filter (
                    where ordered_at >= {{ shift_in_utc(
                        'period_end_at',
                        'make_interval(months => -' ~ var('trailing_revenue_months') ~ ')'
                    ) }}
                ),
                0
            ) as trailing_12m_revenue
        from orders_before_period_end
        group by 1, 2, 3
    ),

    -- several orders on one day are one order day: gaps are between distinct dates
    order_days as (
        select distinct
            period_key,
            customer_id,
            ordered_date
        from orders_before_period_end
    ),

    order_day_gaps as (
        select
            period_key,
            customer_id,
            ordered_date,
            row_number() over (
                partition by period_key, customer_id order by ordered_date
            ) as order_day_number,
            ordered_date - lag(ordered_date) over (
                partition by period_key, customer_id order by ordered_date
            ) as gap_days
        from order_days
    ),

    own_rhythms as (
        select
            period_key,
            customer_id,
            percentile_cont(0.5) within group (order by gap_days) as median_gap_days
        from order_day_gaps
        where gap_days is not null
        group by 1, 2
    ),

    -- fallback for customers with few orders: the population's typical time
    -- from the first to the second order date
    population_rhythms as (
        select
            period_key,
            percentile_cont(0.5) within group (order by gap_days) as median_first_gap_days
        from order_day_gaps
        where order_day_number = 2
        group by 1
    ),

    expected_gaps as (
        select
            order_totals.*,
            {{ days_between('order_totals.last_order_at', 'order_totals.period_end_at') }} as recency_days,
            greatest(
                {{ var('min_expected_gap_days') }},
                coalesce(
                    case
                        when order_totals.orders_count >= {{ var('min_orders_for_own_rhythm') }}
                            then own_rhythms.median_gap_days
                    end,
                    population_rhythms.median_first_gap_days
                )
            )::numeric as expected_gap_days
        from order_totals
        left join own_rhythms
            on order_totals.period_key = own_rhythms.period_key
            and order_totals.customer_id = own_rhythms.customer_id
        left join population_rhythms
            on order_totals.period_key = population_rhythms.period_key
    ),

    ratios as (
        select
            *,
            -- rounded once here; the stage is decided on this same value
            round(recency_days / expected_gap_days, 4) as gap_ratio
        from expected_gaps
    ),

    staged as (
        select
            *,
            case
                when gap_ratio < {{ var('stage_churn_risk_ratio') }} then 'active'
                when gap_ratio < {{ var('stage_potential_churn_ratio') }} then 'churn risk'
                when gap_ratio < {{ var('stage_churned_ratio') }} then 'potential churn'
                else 'churned'
            end as churn_stage
        from ratios
    )

    select
        customer_id,
        period_key as {{ period_key }},
        period_end_at as {{ period_end_at }},
        first_order_at,
        last_order_at,
        orders_count,
        net_revenue,
        trailing_12m_revenue,
        recency_days,
        expected_gap_days,
        gap_ratio,
        churn_stage
    from staged
{%- endmacro %}
