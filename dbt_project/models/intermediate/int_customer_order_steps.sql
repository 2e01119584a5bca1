{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        unlogged=true,
        pre_hook=[
            "{{ read_one_snapshot() }}",
            "{{ set_local_work_mem() }}",
            "{{ redo_changed_step_tails(ref('stg_shop__orders'), ['net_amount', 'median_gap_days', 'loaded_through']) }}",
        ],
        post_hook="analyze {{ this }}",
        indexes=[
            {'columns': ['loaded_through']},
        ],
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
-- Incremental by customer and time: the pre-hook
-- (macros/redo_changed_step_tails.sql) deleted, for every customer whose orders
-- were loaded or changed since, their steps from just before the first changed
-- one on, and left the customers and those points in `order_steps_to_redo`.
-- A run computes those customers' running totals over all their orders (one
-- sort) but writes, and takes the own-rhythm medians of, only the steps from
-- that point on: a normal week adds a step or two per customer who ordered
-- instead of redoing their history, and the table equals a full recompute
-- (--full-refresh).
--
-- Unlogged: millions of derived rows without WAL; a crash empties the table and
-- the next run recomputes every customer (slower, same answer). Analyzed at once
-- so the histories' joins in the same run are planned on its real size. Indexed
-- on loaded_through: the pre-hook and the histories' bookkeeping ask for its
-- highest value on every run, otherwise a scan of every stored step; raw's
-- batches are found through raw's own index on _batch_id (ddl.py).
with

orders as (
    select * from {{ ref('stg_shop__orders') }}
),

completed_orders as (
    select
        orders.customer_id,
        orders.order_id,
        orders.ordered_at,
        orders.ordered_date,
        orders.net_amount
        {%- if is_incremental() %},
        redo.redo_from
        {%- endif %}
    from orders
    {%- if is_incremental() %}
    inner join order_steps_to_redo as redo
        on redo.customer_id = orders.customer_id
    {%- endif %}
    where orders.is_completed
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
        {%- if is_incremental() %}
        redo_from,
        {%- endif %}
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
        {%- if is_incremental() %}
        redo_from,
        {%- endif %}
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

-- the steps this run writes: all of them on a full build, the redone tails on
-- an incremental one
new_steps as (
    select *
    from steps
    {%- if is_incremental() %}
    where ordered_at >= redo_from
    {%- endif %}
),

order_day_gaps as (
    select
        customer_id,
        ordered_date,
        gap_days
        {%- if is_incremental() %},
        redo_from
        {%- endif %}
    from steps
    where gap_days is not null
),

-- the order days whose rhythm this run needs: those of the steps it writes
-- (every order day after the first has a gap, on its first order, which can
-- be older than the redone tail: the days are taken from the gaps)
rhythm_days as (
    select
        customer_id,
        ordered_date
    from order_day_gaps
    {%- if is_incremental() %}
    where ordered_date >= (redo_from at time zone {{ business_timezone() }})::date
    {%- endif %}
),

-- the customer's own rhythm as of each of those days: the median of their
-- gaps up to that day (each (day, earlier gap) pair is sorted once, here;
-- grouped bytewise, collate "C", the cheapest sort)
own_rhythms as (
    select
        rhythm_days.customer_id collate "C" as customer_id,
        rhythm_days.ordered_date,
        percentile_cont(0.5) within group (order by order_day_gaps.gap_days) as median_gap_days
    from rhythm_days
    inner join order_day_gaps
        on order_day_gaps.customer_id = rhythm_days.customer_id
        and order_day_gaps.ordered_date <= rhythm_days.ordered_date
    group by 1, 2
),

final as (
    select
        new_steps.customer_id,
        new_steps.order_id,
        new_steps.ordered_at,
        new_steps.ordered_date,
        new_steps.net_amount,
        new_steps.next_ordered_at,
        new_steps.first_order_at,
        new_steps.orders_count,
        new_steps.net_revenue,
        new_steps.gap_days,
        new_steps.starts_second_order_day,
        -- every order day after the first has a gap, so every step on such a
        -- day finds its day here; the first day has no rhythm yet (null)
        own_rhythms.median_gap_days,
        -- read from the view, not the orders CTE: a second reference would make
        -- PostgreSQL materialize that CTE, every order written to a temporary
        -- file before the join (a third of this model's time at 10M orders);
        -- this way the join reads raw in place and the max is one probe of
        -- raw's batch index
        (select coalesce(max(batch_id), 0) from {{ ref('stg_shop__orders') }}) as loaded_through
    from new_steps
    left join own_rhythms
        on new_steps.customer_id = own_rhythms.customer_id
        and new_steps.ordered_date = own_rhythms.ordered_date
)

select * from final
