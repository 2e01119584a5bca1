{#-
    The one definition of a customer's churn stage, as of each period end of
    `period_ends` (a CTE or relation with columns `period_key` and
    `period_end_at`). Only completed orders placed before each period end
    count, so a past period recomputed later gives the same answer.
    `order_steps` is a relation shaped like int_customer_order_steps: every
    completed order with its customer's running totals, next order time and
    own rhythm (median_gap_days) up to it.

    `population_steps` (default: `order_steps`) gives the population's
    first-gap median (macros/population_first_gaps.sql); a caller that passes
    some customers' steps as `order_steps` passes everyone's here.

    Returns a query (usable as a CTE body) with one row per customer with at
    least one completed order before the period end: customer_id,
    period_end_at (the period key only serves the joins inside), first_order_at,
    last_order_at, orders_count, net_revenue, trailing_12m_revenue,
    recency_days, expected_gap_days, gap_ratio, churn_stage,
    population_gap_days (that median). The weekly history
    (int_customer_stage_history_weekly) and the monthly one (int_customer_stage_history_monthly) both call it, so
    the stage of a week end and of a month end can never disagree.

    How it stays cheap: the totals as of a period end are those of the
    customer's last order before it (ordered_at < end <= next_ordered_at), so
    a period end takes one range join on the few steps current at some period
    end of the build (for most customers, their last order) instead of
    re-aggregating all history once per period end. The trailing revenue is
    the running revenue at the period end minus the running revenue at the
    start of the trailing window, found the same way. The customer's own
    rhythm (the median of their gaps up to a step) comes with the step: it
    depends on their orders only, so int_customer_order_steps computes it once
    per order day, for the customers whose orders changed.
-#}
{% macro customer_stages(period_ends, period_key, period_end_at, order_steps, population_steps=none) -%}
    with

    periods as (
        select
            {{ period_key }} as period_key,
            {{ period_end_at }} as period_end_at,
            {{ shift_in_business_tz(
                period_end_at,
                'make_interval(months => -' ~ var('trailing_revenue_months') ~ ')'
            ) }} as trailing_from_at
        from {{ period_ends }}
    ),

    bounds as (
        select
            min(period_end_at) as earliest_period_end_at,
            max(period_end_at) as latest_period_end_at,
            min(trailing_from_at) as earliest_trailing_from_at,
            max(trailing_from_at) as latest_trailing_from_at
        from periods
    ),

    -- not materialized: read three times below, and a materialized CTE copied
    -- every order step to a tuplestore on disk before the first read (8 of the
    -- weekly history's 14 s for a new week end at 10M orders); each read now
    -- scans the table with its own filter
    order_steps as not materialized (
        select * from {{ order_steps }}
    ),

    -- the steps some period end of this build falls in (ordered_at < end <= next)
    current_steps as (
        select
            order_steps.customer_id,
            order_steps.ordered_at,
            order_steps.next_ordered_at,
            order_steps.first_order_at,
            order_steps.orders_count,
            order_steps.net_revenue,
            order_steps.median_gap_days
        from order_steps
        cross join bounds
        where order_steps.ordered_at < bounds.latest_period_end_at
            and (
                order_steps.next_ordered_at is null
                or order_steps.next_ordered_at >= bounds.earliest_period_end_at
            )
            and exists (
                select from periods
                where periods.period_end_at > order_steps.ordered_at
                    and (
                        order_steps.next_ordered_at is null
                        or periods.period_end_at <= order_steps.next_ordered_at
                    )
            )
    ),

    -- the running revenue just before each trailing window, kept for the
    -- customers who ordered both before the window and inside it (everyone
    -- else has all or none of their revenue in it): a map period key ->
    -- revenue per customer
    revenue_before_trailing_window as (
        select
            order_steps.customer_id,
            jsonb_object_agg(periods.period_key::text, order_steps.net_revenue) as by_period
        from order_steps
        cross join bounds
        inner join periods
            on order_steps.ordered_at < periods.trailing_from_at
            and order_steps.next_ordered_at >= periods.trailing_from_at
            and order_steps.next_ordered_at < periods.period_end_at
        where order_steps.ordered_at < bounds.latest_trailing_from_at
            and order_steps.next_ordered_at >= bounds.earliest_trailing_from_at
        group by 1
    ),

    -- fallback for customers with few orders: the population's typical time
    -- from the first to the second order date (macros/population_first_gaps.sql),
    -- over every customer's steps even where `order_steps` is a subset
    population_rhythms as (
        {{ population_first_gaps('periods', population_steps or order_steps) }}
    ),

    steps_with_history as (
        select
            current_steps.customer_id,
            current_steps.ordered_at,
            current_steps.next_ordered_at,
            current_steps.first_order_at,
            current_steps.orders_count,
            current_steps.net_revenue,
            case
                when current_steps.orders_count >= {{ var('min_orders_for_own_rhythm') }}
                    then current_steps.median_gap_days::numeric
            end as own_gap_days,
            revenue_before_trailing_window.by_period as revenue_before_trailing_window
        from current_steps
        left join revenue_before_trailing_window
            on current_steps.customer_id = revenue_before_trailing_window.customer_id
        -- joined here, per step (millions of rows), not after the expansion to
        -- every period end (tens of millions): "offset 0" keeps PostgreSQL
        -- from moving these outer joins past the range join below
        offset 0
    ),

    -- one row per period end and customer: the step current at the period end
    expected_gaps as (
        select
            periods.period_key,
            periods.period_end_at,
            steps.customer_id,
            steps.first_order_at,
            steps.ordered_at as last_order_at,
            steps.orders_count,
            steps.net_revenue,
            case
                when steps.ordered_at < periods.trailing_from_at then 0
                else steps.net_revenue - coalesce(
                    (steps.revenue_before_trailing_window ->> periods.period_key::text)::numeric,
                    0
                )
            end as trailing_12m_revenue,
            {{ days_between('steps.ordered_at', 'periods.period_end_at') }} as recency_days,
            greatest(
                {{ var('min_expected_gap_days') }},
                coalesce(steps.own_gap_days, population_rhythms.median_first_gap_days::numeric)
            ) as expected_gap_days,
            population_rhythms.median_first_gap_days as population_gap_days
        from periods
        inner join steps_with_history as steps
            on steps.ordered_at < periods.period_end_at
            and (steps.next_ordered_at is null or steps.next_ordered_at >= periods.period_end_at)
        left join population_rhythms
            on periods.period_key = population_rhythms.period_key
    ),

    ratios as (
        select
            *,
            -- rounded once here; the stage is decided on this same value
            round(recency_days / expected_gap_days, 4) as gap_ratio
        from expected_gaps
        -- "offset 0" again: keeps PostgreSQL from pasting these expressions into
        -- every use of gap_ratio below (computed once per row, not once per use)
        offset 0
    ),

    staged as (
        select
            *,
            -- width_bucket: 0 below the first threshold, 1 from it to the second...
            (array[{{ "'" ~ churn_stages() | join("', '") ~ "'" }}])[
                width_bucket(
                    gap_ratio,
                    array[
                        {{ var('stage_churn_risk_ratio') }},
                        {{ var('stage_potential_churn_ratio') }},
                        {{ var('stage_churned_ratio') }}
                    ]::numeric[]
                ) + 1
            ] as churn_stage
        from ratios
    )

    select
        customer_id,
        period_end_at as {{ period_end_at }},
        first_order_at,
        last_order_at,
        orders_count,
        net_revenue,
        trailing_12m_revenue,
        recency_days,
        expected_gap_days,
        gap_ratio,
        churn_stage,
        population_gap_days
    from staged
{%- endmacro %}
