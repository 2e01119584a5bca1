{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        unlogged=true,
        pre_hook=[
            "{{ read_one_snapshot() }}",
            "{{ set_local_work_mem() }}",
            "{{ redo_changed_step_tails(ref('stg_shop__orders'), source('shop', 'orders'), ['net_amount', 'median_gap_days', 'loaded_through']) }}",
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
-- one on, and left the changed orders, those customers' stored steps as they
-- were and their redo points in temporary tables. A run continues each such
-- customer's running totals from their last kept step over the orders of the
-- deleted tail (the stored ones that did not change, and the changed ones that
-- are completed now), and takes the own-rhythm medians of the tail's days over
-- the kept gaps and the new ones: a normal week adds a step or two per customer
-- who ordered, reads neither raw nor their whole history, and the table equals
-- a full recompute (--full-refresh).
--
-- Unlogged: millions of derived rows without WAL; a crash empties the table and
-- the next run recomputes every customer (slower, same answer). Analyzed at once
-- so the histories' joins in the same run are planned on its real size. Indexed
-- on loaded_through: the pre-hook and the histories' bookkeeping ask for its
-- highest value on every run, otherwise a scan of every stored step; raw's
-- batches are found through raw's own index on _batch_id (ddl.py).
with

{%- if is_incremental() %}

-- the pre-hook's work (macros/redo_changed_step_tails.sql): the changed
-- orders as raw has them now, the touched customers' stored steps as they
-- were before its delete, and each customer's redo point
changed_orders as (
    select * from order_step_changes
),

stored_steps as (
    select * from order_steps_stored
),

redo as (
    select * from order_steps_to_redo
),

kept_steps as (
    select stored_steps.*
    from stored_steps
    inner join redo
        on redo.customer_id = stored_steps.customer_id
    where stored_steps.ordered_at < redo.redo_from
),

-- the running totals each redone customer's tail continues from: those of their
-- last kept step, read off the stored step at the redo point (the first one in
-- the window's order below when several share that instant), whose totals are
-- the kept ones plus its own order, and whose gap goes back to the last kept
-- order day. The same as the last row of kept_steps per customer, without
-- sorting every kept step (about 1.5M rows for a week at 10M orders), and
-- kept_steps, read once more below, is then inlined instead of written to a
-- tuplestore: the model's body 6.5 -> 4.6 s for that week (equal rows).
-- A customer whose tail starts at their first step has no kept totals: the
-- first of the steps at the redo point carries their first order alone. Hence
-- the filter after picking that step: filtered before, a second step at the
-- same instant would be picked instead, and the first order counted twice.
kept_totals as (
    select *
    from (
        select distinct on (stored_steps.customer_id collate "C")
            stored_steps.customer_id,
            stored_steps.orders_count - 1 as orders_count,
            stored_steps.net_revenue - stored_steps.net_amount as net_revenue,
            stored_steps.first_order_at,
            -- no gap: the previous order was on the same day
            stored_steps.ordered_date - coalesce(stored_steps.gap_days, 0) as last_order_date,
            (stored_steps.first_order_at at time zone {{ business_timezone() }})::date as first_order_date
        from stored_steps
        inner join redo
            on redo.customer_id = stored_steps.customer_id
            and stored_steps.ordered_at = redo.redo_from
        order by stored_steps.customer_id collate "C", stored_steps.order_id collate "C"
    ) as first_redone_steps
    where orders_count > 0
),

-- the stored tail's orders that did not change (raw still has them as they
-- were stored): with the changed orders completed now, the orders of the tails
stored_tail_orders as (
    select
        stored_steps.customer_id,
        stored_steps.order_id,
        stored_steps.ordered_at,
        stored_steps.ordered_date,
        stored_steps.net_amount
    from stored_steps
    inner join redo
        on redo.customer_id = stored_steps.customer_id
    where stored_steps.ordered_at >= redo.redo_from
        and not exists (
            select from changed_orders
            where changed_orders.order_id = stored_steps.order_id
        )
),

{%- set new_orders = 'changed_orders' %}
{%- else %}

orders as (
    select * from {{ ref('stg_shop__orders') }}
),

{%- set new_orders = 'orders' %}
{%- endif %}

completed_orders as (
    {%- if is_incremental() %}
    select * from stored_tail_orders
    union all
    {%- endif %}
    select
        customer_id,
        order_id,
        ordered_at,
        ordered_date,
        net_amount
    from {{ new_orders }}
    where is_completed
),

-- orders at the same instant are taken in id order, so exactly one of them
-- carries the totals of both; keys compare bytewise (collate "C"): any fixed
-- order would do, and this one sorts fastest. An incremental run continues
-- each customer's totals from their last kept step.
running as (
    select
        completed_orders.customer_id,
        completed_orders.order_id,
        completed_orders.ordered_at,
        completed_orders.ordered_date,
        completed_orders.net_amount,
        lead(completed_orders.ordered_at) over customer_orders as next_ordered_at,
        {%- if is_incremental() %}
        coalesce(kept_totals.first_order_at, min(completed_orders.ordered_at) over customer_orders)
            as first_order_at,
        coalesce(kept_totals.orders_count, 0) + count(*) over customer_orders as orders_count,
        coalesce(kept_totals.net_revenue, 0) + sum(completed_orders.net_amount) over customer_orders
            as net_revenue,
        coalesce(lag(completed_orders.ordered_date) over customer_orders, kept_totals.last_order_date)
            as previous_order_date,
        coalesce(kept_totals.first_order_date, min(completed_orders.ordered_date) over customer_orders)
            as first_order_date
        {%- else %}
        min(completed_orders.ordered_at) over customer_orders as first_order_at,
        count(*) over customer_orders as orders_count,
        sum(completed_orders.net_amount) over customer_orders as net_revenue,
        lag(completed_orders.ordered_date) over customer_orders as previous_order_date,
        min(completed_orders.ordered_date) over customer_orders as first_order_date
        {%- endif %}
    from completed_orders
    {%- if is_incremental() %}
    left join kept_totals
        on kept_totals.customer_id = completed_orders.customer_id
    {%- endif %}
    window customer_orders as (
        partition by completed_orders.customer_id collate "C"
        order by completed_orders.ordered_at, completed_orders.order_id collate "C"
        rows between unbounded preceding and current row
    )
),

-- several orders on one day are one order day: a gap is recorded on the
-- first order of each new day, counted from the previous order day; these
-- are the steps this run writes (all of them on a full build, the redone
-- tails on an incremental one)
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

-- every gap of the customers this run writes: on an incremental run the kept
-- steps' gaps count too
order_day_gaps as (
    select
        customer_id,
        ordered_date,
        gap_days
    from steps
    where gap_days is not null
    {%- if is_incremental() %}
    union all
    select
        customer_id,
        ordered_date,
        gap_days
    from kept_steps
    where gap_days is not null
    {%- endif %}
),

-- the order days whose rhythm this run needs: those of the steps it writes
-- (every order day after the first has a gap, on its first order, which can
-- be a kept step's, earlier on the redone tail's first day: the days are
-- taken from the gaps)
rhythm_days as (
    select
        order_day_gaps.customer_id,
        order_day_gaps.ordered_date
    from order_day_gaps
    {%- if is_incremental() %}
    inner join redo
        on redo.customer_id = order_day_gaps.customer_id
    where order_day_gaps.ordered_date >= (redo.redo_from at time zone {{ business_timezone() }})::date
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
        -- read from raw itself: through the staging view the max reads raw's
        -- whole batch index instead of probing it (highest_loaded_batch), and
        -- a second reference to the orders CTE of a full build would make
        -- PostgreSQL materialize it (every order written to a temporary file)
        {{ highest_loaded_batch(source('shop', 'orders')) }} as loaded_through
    from steps
    left join own_rhythms
        on steps.customer_id = own_rhythms.customer_id
        and steps.ordered_date = own_rhythms.ordered_date
)

select * from final
