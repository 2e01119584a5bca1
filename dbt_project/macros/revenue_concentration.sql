{#-
    The select of int_revenue_concentration_<grain>: for each reported period
    of `period_ends` that the stored rows do not have yet, the 80/20 check as
    of the period end. Customers with trailing revenue are ranked best first;
    the top ceil(n x top_customers_share) of them earn `top_customers_revenue`
    of `trailing_revenue`. The sum of the top k values does not depend on how
    ties are ordered, so the figure is deterministic.

    Arguments as for stage_flows (macros/stage_flows.sql).
-#}
{% macro revenue_concentration(period, period_ends, history) -%}
    with

    periods as (
        select * from {{ period_ends }}
    ),

    history as (
        select * from {{ history }}
    ),

    periods_to_build as (
        {{ reported_periods_to_build(period, 'periods') }}
    ),

    revenue_ranks as (
        select
            history.{{ period }}_end_at as period_end_at,
            history.trailing_12m_revenue,
            row_number() over (
                partition by history.{{ period }}_end_at
                order by history.trailing_12m_revenue desc
            ) as revenue_rank,
            count(*) over (partition by history.{{ period }}_end_at) as ranked_customers
        from periods_to_build
        inner join history
            on history.{{ period }}_end_at = periods_to_build.period_end_at
        where history.trailing_12m_revenue > 0
    ),

    concentrated as (
        select
            period_end_at,
            max(ranked_customers) as ranked_customers,
            sum(trailing_12m_revenue) filter (
                where revenue_rank <= ceil(ranked_customers * {{ var('top_customers_share') }})
            ) as top_customers_revenue,
            sum(trailing_12m_revenue) as trailing_revenue
        from revenue_ranks
        group by 1
    ),

    final as (
        select
            period_end_at as {{ period }}_end_at,
            ranked_customers::bigint as ranked_customers,
            top_customers_revenue::numeric as top_customers_revenue,
            trailing_revenue::numeric as trailing_revenue,
            {{ period_bookkeeping_columns(history) }}
        from concentrated
    )

    select * from final
{%- endmacro %}
