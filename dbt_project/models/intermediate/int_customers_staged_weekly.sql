-- The churn stage of every customer with orders at each week end of this run's
-- window (int_weeks_enumerated), read from the stored history
-- (int_customer_stage_history_weekly) with the run's week_index attached.
with

history as (
    select * from {{ ref('int_customer_stage_history_weekly') }}
),

weeks as (
    select * from {{ ref('int_weeks_enumerated') }}
),

final as (
    select
        history.customer_id,
        weeks.week_index,
        history.week_end_at,
        history.first_order_at,
        history.last_order_at,
        history.orders_count,
        history.net_revenue,
        history.trailing_12m_revenue,
        history.recency_days,
        history.expected_gap_days,
        history.gap_ratio,
        history.churn_stage
    from history
    inner join weeks
        on history.week_end_at = weeks.week_end_at
)

select * from final
