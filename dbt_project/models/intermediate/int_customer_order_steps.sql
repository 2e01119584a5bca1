{{
    config(
        materialized='table',
        unlogged=true,
        pre_hook="{{ set_local_work_mem() }}",
        post_hook="analyze {{ this }}",
    )
}}
-- Every completed order with its customer's running totals up to and including
-- it, in time order: the totals as of any moment t are those of the customer's
-- last order before t (the row with ordered_at < t <= next_ordered_at). The
-- stage histories read a period end's state from here with one range join
-- instead of re-aggregating all history once per period end.
--
-- Rebuilt on every run and read only within it, so unlogged (no WAL for
-- millions of rows; a crash empties it and the next run rebuilds it), and
-- analyzed at once so the planner sizes the histories' joins right.
with

orders as (
    select * from {{ ref('stg_shop__orders') }}
),

completed_orders as (
    select
        customer_id,
        order_id,
        ordered_at,
        ordered_date,
        net_amount
    from orders
    where is_completed
),

-- orders at the same instant are taken in id order, so exactly one of them
-- carries the totals of both; keys compare bytewise (collate "C"): any fixed
-- order would do, and this one sorts fastest
running as (
    select
        customer_id,
        order_id,
        ordered_at,
        ordered_date,
        lead(ordered_at) over customer_orders as next_ordered_at,
        min(ordered_at) over customer_orders as first_order_at,
        count(*) over customer_orders as orders_count,
        sum(net_amount) over customer_orders as net_revenue,
        lag(ordered_date) over customer_orders as previous_order_date,
        min(ordered_date) over customer_orders as first_order_date
    from completed_orders
    window customer_orders as (
        partition by customer_id collate "C"
        order by ordered_at, order_id collate "C"
        rows between unbounded preceding and current row
    )
),

-- several orders on one day are one order day: a gap is recorded on the
-- first order of each new day, counted from the previous order day
final as (
    select
        customer_id,
        order_id,
        ordered_at,
        ordered_date,
        next_ordered_at,
        first_order_at,
        orders_count,
        net_revenue,
        case
            when ordered_date > previous_order_date then ordered_date - previous_order_date
        end as gap_days,
        coalesce(
            ordered_date > previous_order_date and previous_order_date = first_order_date,
            false
        ) as starts_second_order_day
    from running
)

select * from final
