{#-
    The population's typical time from the first to the second order date as of
    each period end: the fallback expected gap of customers with too few orders
    of their own (macros/customer_stages.sql), over the customers whose second
    order day began before the period end.

    `periods`: a CTE or relation with `period_key` and `period_end_at`;
    `order_steps`: a relation shaped like int_customer_order_steps, with every
    customer's steps (a subset would give another median).
    Returns a query with one row per period key that has at least one such
    customer: period_key, median_first_gap_days.

    Gaps are whole days, so the median is read off a count per gap length
    (percentile_cont over every customer and period end would sort millions of
    rows): the values at the two middle positions, averaged, as
    percentile_cont(0.5) does. Written once, because the stage histories'
    pre-hook (delete_stale_period_ends) recomputes it for the period ends it
    would otherwise keep, and compares it with the stored one.
-#}
{% macro population_first_gaps(periods, order_steps) -%}
    with

    second_order_days as materialized (
        select
            ordered_at,
            gap_days
        from {{ order_steps }}
        where starts_second_order_day
    ),

    first_gap_counts as (
        select
            periods.period_key,
            second_order_days.gap_days,
            count(*) as customers
        from {{ periods }} as periods
        inner join second_order_days
            on second_order_days.ordered_at < periods.period_end_at
        group by 1, 2
    ),

    first_gap_positions as (
        select
            period_key,
            gap_days,
            -- this gap length fills the sorted list up to (excluding) this 0-based position
            sum(customers) over (partition by period_key order by gap_days) as to_position,
            sum(customers) over (partition by period_key) as population
        from first_gap_counts
    )

    select
        period_key,
        (
            min(gap_days) filter (where to_position > floor((population - 1) / 2.0))
            + min(gap_days) filter (where to_position > ceil((population - 1) / 2.0))
        ) / 2::double precision as median_first_gap_days
    from first_gap_positions
    group by 1
{%- endmacro %}
