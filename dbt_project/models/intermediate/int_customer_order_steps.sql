{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        unlogged=true,
        pre_hook=[
            "{{ read_one_snapshot() }}",
            "{{ set_local_work_mem() }}",
            "{{ delete_changed_customer_steps(ref('stg_shop__orders'), ['net_amount', 'median_gap_days', 'loaded_through']) }}",
        ],
        post_hook="analyze {{ this }}",
    )
}}
-- Every completed order with its customer's running totals up to and including
-- it, in time order: the totals as of any moment t are those of the customer's
-- last order before t (the row with ordered_at < t <= next_ordered_at). The
-- stage histories read a period end's state from here with one range join
-- instead of re-aggregating all history once per period end, and each step
-- carries the customer's own rhythm up to it (the median gap between their
-- order days), which depends on nothing but their orders.
--
-- Incremental by customer: a run computes the steps of the customers that have
-- none stored, after the pre-hook (macros/delete_changed_customer_steps.sql)
-- deleted those of every customer whose orders were loaded or changed since:
-- a normal week recomputes the customers who ordered, not all history, and the
-- table equals a full recompute (--full-refresh).
--
-- Unlogged: millions of derived rows without WAL; a crash empties the table and
-- the next run recomputes every customer (slower, same answer). Analyzed at once
-- so the histories' joins in the same run are planned on its real size.
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
    {%- if is_incremental() %}
        and not exists (
            select from {{ this }} as stored
            where stored.customer_id = orders.customer_id
        )
    {%- endif %}
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
        net_amount,
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
steps as (
    select
        customer_id,
        order_id,
        ordered_at,
        ordered_date,
        net_amount,
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
),

order_day_gaps as (
    select
        customer_id,
        ordered_date,
        gap_days
    from steps
    where gap_days is not null
),

-- the customer's own rhythm as of each of their order days after the first:
-- the median of their gaps up to that day (every (day, earlier gap) pair is
-- sorted once, here, for the customers this run computes; grouped bytewise,
-- collate "C", the cheapest sort)
own_rhythms as (
    select
        order_days.customer_id collate "C" as customer_id,
        order_days.ordered_date,
        percentile_cont(0.5) within group (order by order_day_gaps.gap_days) as median_gap_days
    from order_day_gaps as order_days
    inner join order_day_gaps
        on order_day_gaps.customer_id = order_days.customer_id
        and order_day_gaps.ordered_date <= order_days.ordered_date
    group by 1, 2
),

final as (
    select
        steps.customer_id,
        steps.order_id,
        steps.ordered_at,
        steps.ordered_date,
        steps.net_amount,
        steps.next_ordered_at,
        steps.first_order_at,
        steps.orders_count,
        steps.net_revenue,
        steps.gap_days,
        steps.starts_second_order_day,
        -- every order day after the first has a gap, so every step on such a
        -- day finds its day here; the first day has no rhythm yet (null)
        own_rhythms.median_gap_days,
        (select coalesce(max(batch_id), 0) from orders) as loaded_through
    from steps
    left join own_rhythms
        on steps.customer_id = own_rhythms.customer_id
        and steps.ordered_date = own_rhythms.ordered_date
)

select * from final
