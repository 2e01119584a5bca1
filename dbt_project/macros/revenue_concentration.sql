{#-
    The select of int_revenue_concentration_<grain>: for each reported period
    of `period_ends` that the stored rows do not have yet, the 80/20 check as
    of the period end. Customers with trailing revenue are ranked best first;
    the top ceil(n x top_customers_share) of them earn `top_customers_revenue`
    of `trailing_revenue`. The sum of the top k values does not depend on how
    ties are ordered, so the figure is deterministic, and it is computed from
    the count of customers at each distinct revenue.

    Arguments as for stage_flows (macros/stage_flows.sql), except `history`,
    which for months is the stored monthly history, and `running`: for months
    the weekly stage history, whose week end at as_of is the running month
    (the monthly history stores complete months only). Each is joined to the
    ends to build on its own: through stages_to_date, a union, the join
    condition did not reach either history and the planner scanned the whole
    monthly history (at 10M orders the incremental week's check went from 1.7
    s to 4.3 s). Counting one end at a time in a lateral subquery, as the
    flows do, measured faster on a warm warehouse but slower in the
    benchmark's runs (a first build's weekly check 8.4 -> 18.5 s, a normal
    week's 2.9 -> 5.5 s), most likely because in a run the rows were just
    written and the join's parallel scan pays for their first read in three
    processes (not verified).
-#}
{% macro revenue_concentration(period, period_ends, history, running=none, seen=none) -%}
    with

    periods as (
        select * from {{ period_ends }}
    ),

    history as (
        select * from {{ history }}
    ),
    {%- if running is not none %}

    running as (
        select * from {{ running }}
    ),
    {%- endif %}

    periods_to_build as (
        {{ reported_periods_to_build(period, 'periods') }}
    ),

    -- customers by trailing revenue per period end: the top k customers' revenue
    -- is the sum over the values, best first, of value x the customers of it still
    -- within the top k (ties at the boundary are worth the same, so which of them
    -- count does not matter). Counted per distinct value, not ranked per customer:
    -- a week end at 10M orders has 1.25M customers with revenue, and its rows
    -- came out equal in 0.95 s instead of 1.5 s
    value_counts as (
        select
            history.{{ period }}_end_at as period_end_at,
            history.trailing_12m_revenue as value,
            count(*) as customers
        from periods_to_build
        inner join history
            on history.{{ period }}_end_at = periods_to_build.period_end_at
        where history.trailing_12m_revenue > 0
        {%- if running is not none %}
            and history.{{ period }}_end_at <> {{ as_of() }}
        {%- endif %}
        group by 1, 2
        {%- if running is not none %}
        union all
        select
            running.week_end_at as period_end_at,
            running.trailing_12m_revenue as value,
            count(*) as customers
        from periods_to_build
        inner join running
            on running.week_end_at = periods_to_build.period_end_at
        where running.trailing_12m_revenue > 0
            and running.week_end_at = {{ as_of() }}
        group by 1, 2
        {%- endif %}
    ),

    cumulated as (
        select
            *,
            -- the customers at this value or a better one
            sum(customers) over (partition by period_end_at order by value desc) as through_value,
            sum(customers) over (partition by period_end_at) as ranked_customers
        from value_counts
    ),

    concentrated as (
        select
            period_end_at,
            max(ranked_customers) as ranked_customers,
            sum(value * greatest(0, least(
                customers,
                ceil(ranked_customers * {{ var('top_customers_share') }}) - (through_value - customers)
            ))) as top_customers_revenue,
            sum(value * customers) as trailing_revenue
        from cumulated
        group by 1
    ),

    final as (
        select
            period_end_at as {{ period }}_end_at,
            ranked_customers::bigint as ranked_customers,
            top_customers_revenue::numeric as top_customers_revenue,
            trailing_revenue::numeric as trailing_revenue,
            {{ period_bookkeeping_columns(history, seen=seen) }}
        from concentrated
    )

    select * from final
{%- endmacro %}
