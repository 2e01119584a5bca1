-- The churn stage of every customer with orders at each month end of this run's
-- window (int_months_enumerated), read from the stored history
-- (int_customer_stage_history_monthly) with the run's month_index attached.
with

history as (
    select * from {{ ref('int_customer_stage_history_monthly') }}
),

months as (
    select * from {{ ref('int_months_enumerated') }}
),

final as (
    select
        history.customer_id,
        months.month_index,
        history.month_end_at,
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
    inner join months
        on history.month_end_at = months.month_end_at
)

select * from final
