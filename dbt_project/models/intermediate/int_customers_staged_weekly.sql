-- The one definition of a customer's churn stage, for every week end of the
-- KPI history. Only orders placed before each week end count, so a past week
-- recomputed later gives the same answer.
with

orders as (
    select * from {{ ref('stg_shop__orders') }}
),

weeks as (
    select * from {{ ref('int_weeks_enumerated') }}
),

completed_orders as (
    select
        customer_id,
        ordered_at,
        ordered_date,
        net_amount
    from orders
    where is_completed
),

orders_before_week_end as (
    select
        weeks.week_index,
        weeks.week_end_at,
        completed_orders.customer_id,
        completed_orders.ordered_at,
        completed_orders.ordered_date,
        completed_orders.net_amount
    from weeks
    inner join completed_orders
        on completed_orders.ordered_at < weeks.week_end_at
),

order_totals as (
    select
        week_index,
        week_end_at,
        customer_id,
        min(ordered_at) as first_order_at,
        max(ordered_at) as last_order_at,
        count(*) as orders_count,
        sum(net_amount) as net_revenue,
        coalesce(
            sum(net_amount) filter (
                where ordered_at >= {{ shift_in_utc(
                    'week_end_at',
                    'make_interval(months => -' ~ var('trailing_revenue_months') ~ ')'
                ) }}
            ),
            0
        ) as trailing_12m_revenue
    from orders_before_week_end
    group by 1, 2, 3
),

-- several orders on one day are one order day: gaps are between distinct dates
order_days as (
    select distinct
        week_index,
        customer_id,
        ordered_date
    from orders_before_week_end
),

order_day_gaps as (
    select
        week_index,
        customer_id,
        ordered_date,
        row_number() over (
            partition by week_index, customer_id order by ordered_date
        ) as order_day_number,
        ordered_date - lag(ordered_date) over (
            partition by week_index, customer_id order by ordered_date
        ) as gap_days
    from order_days
),

own_rhythms as (
    select
        week_index,
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
        week_index,
        percentile_cont(0.5) within group (order by gap_days) as median_first_gap_days
    from order_day_gaps
    where order_day_number = 2
    group by 1
),

expected_gaps as (
    select
        order_totals.*,
        {{ days_between('order_totals.last_order_at', 'order_totals.week_end_at') }} as recency_days,
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
        on order_totals.week_index = own_rhythms.week_index
        and order_totals.customer_id = own_rhythms.customer_id
    left join population_rhythms
        on order_totals.week_index = population_rhythms.week_index
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
),

final as (
    select
        customer_id,
        week_index,
        week_end_at,
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
)

select * from final
