{#-
    The select of int_stage_flows_<grain>: for each reported period of
    `period_ends` that the stored flows do not have yet (all of them on a first
    or --full-refresh build), the customers with a stage at the period end,
    counted by their stage at the period start (the previous period end, or
    'new' without one: no completed order before the period), their stage at
    the period end, and whether they placed a completed order in the period.
    Each flow also carries the completed orders its customers placed in the
    period and their net revenue: the history's cumulative orders_count and
    net_revenue at the period end less those at its start (0 without one).
    The period KPIs take their order totals from these sums instead of a range
    join of the period's orders (6.5M orders x 12 months took most of
    rpt_monthly_kpis' 12 s at 10M orders).
    This is everything the period KPIs and the stage transitions read from the
    per-customer history, reduced to at most 5 x 4 x 2 rows per period, so the
    marts never join the history to itself.

    `period`: 'week' or 'month'; `period_ends`: int_weeks_enumerated or
    int_months_enumerated (`<period>_index`, `<period>_start_at`,
    `<period>_end_at`; the start of period k is the end of period k + 1);
    `history`: the matching int_customer_stage_history_<grain> (for months,
    stages_to_date: the stored complete months and the running month);
    `start_history`: where the stages at a period start are read, when not
    `history` (for months the stored history alone: a period start is the end
    of the month before, always a complete month, and a join on the union of
    both histories was planned with a sort of each side, 1.1 s more per month
    at 10M orders); `seen`: the SQL of the highest load batch the rows
    reflect, when not the highest `loaded_through` of `history` (for months
    stages_to_date_seen: a max() over the union reads every row).
-#}
{% macro stage_flows(period, period_ends, history, start_history=none, seen=none) -%}
    with

    periods as (
        select * from {{ period_ends }}
    ),

    -- not materialized: read twice per period below, each read through the
    -- history's unique index (period end, customer) inside a lateral subquery
    -- that `offset 0` keeps from being flattened into a join: periods_to_build
    -- has no statistics, and as a join the planner hashed it against a scan of
    -- every stored period end's rows (1.36 s against 0.27 s for a normal week at
    -- 995k orders; the history grows by a period per run)
    history as not materialized (
        select * from {{ history }}
    ),

    history_at_start as not materialized (
        select * from {{ start_history if start_history is not none else history }}
    ),

    periods_to_build as (
        {{ reported_periods_to_build(period, 'periods') }}
    ),

    -- each period's customers at its end, joined to their stage at its start (the
    -- previous period end) one period at a time: a hash of one period end's
    -- customers, not of every start of the build at once (at 10M orders, three
    -- weeks: 6.0 s against 8.5 s for one join of all three, the history laid
    -- out by period end in both cases)
    customer_flows as (
        select
            periods_to_build.period_start_at,
            periods_to_build.period_end_at,
            flows.from_stage,
            flows.to_stage,
            flows.has_ordered_in_period,
            flows.lifetime_days,
            flows.orders_in_period,
            flows.revenue_in_period
        from periods_to_build
        cross join lateral (
            select
                coalesce(at_start.churn_stage, 'new') as from_stage,
                at_end.churn_stage as to_stage,
                -- the last completed order before the period end is in the period
                -- exactly when the customer ordered in it
                at_end.last_order_at >= periods_to_build.period_start_at as has_ordered_in_period,
                {{ days_between('at_end.first_order_at', 'at_end.last_order_at') | indent(16) }} as lifetime_days,
                -- completed orders before the end less those before the start: the
                -- ones placed in [start, end)
                at_end.orders_count - coalesce(at_start.orders_count, 0) as orders_in_period,
                at_end.net_revenue - coalesce(at_start.net_revenue, 0) as revenue_in_period
            from history as at_end
            left join history_at_start as at_start
                on at_start.{{ period }}_end_at = periods_to_build.period_start_at
                and at_start.customer_id = at_end.customer_id
            where at_end.{{ period }}_end_at = periods_to_build.period_end_at
            offset 0
        ) as flows
    ),

    counted as (
        select
            period_start_at,
            period_end_at,
            from_stage,
            to_stage,
            has_ordered_in_period,
            count(*) as customers,
            sum(lifetime_days) as lifetime_days_sum,
            sum(orders_in_period) as orders,
            sum(revenue_in_period) as revenue
        from customer_flows
        group by 1, 2, 3, 4, 5
    ),

    final as (
        select
            period_start_at as {{ period }}_start_at,
            period_end_at as {{ period }}_end_at,
            from_stage::text as from_stage,
            to_stage::text as to_stage,
            has_ordered_in_period,
            customers::bigint as customers,
            lifetime_days_sum::bigint as lifetime_days_sum,
            orders::bigint as orders,
            revenue::numeric(18, 2) as revenue,
            {{ period_bookkeeping_columns(history, seen=seen) }}
        from counted
    )

    select * from final
{%- endmacro %}
