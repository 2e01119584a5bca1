{#-
    Retention KPIs per reporting period, written once for weeks and months.

    `periods`: CTE of the reported periods with columns `period_key`,
    `period_start_at`, `period_end_at` ([start, end), timestamptz).
    `staged`: the stage history (customer_stages) keyed by `period_key`, where
    key k + 1 holds the stage at the start of period k (= the end of the period
    before it). `orders`, `surveys`: CTEs shaped like the staging models.

    Returns a query with one row per period key and every measure already
    rounded; the calling model adds the period labels and casts.
-#}
{% macro period_kpis(periods, staged, period_key, period_start_at, period_end_at, orders, surveys) -%}
    with

    -- the stage of each customer at the start (= previous period end) and end of each period
    stage_flows as (
        select
            periods.{{ period_key }} as period_key,
            periods.{{ period_start_at }} as period_start_at,
            at_end.customer_id,
            at_start.churn_stage as stage_at_start,
            at_end.churn_stage as stage_at_end,
            at_end.first_order_at,
            at_end.last_order_at
        from {{ periods }} as periods
        inner join {{ staged }} as at_end
            on at_end.{{ period_key }} = periods.{{ period_key }}
        left join {{ staged }} as at_start
            on at_start.{{ period_key }} = periods.{{ period_key }} + 1
            and at_start.customer_id = at_end.customer_id
    ),

    completed_orders_in_period as (
        select
            periods.{{ period_key }} as period_key,
            orders.customer_id,
            orders.net_amount
        from {{ periods }} as periods
        inner join {{ orders }} as orders
            on orders.ordered_at >= periods.{{ period_start_at }}
            and orders.ordered_at < periods.{{ period_end_at }}
        where orders.is_completed
            -- the whole span first (evaluated once), so the range join above
            -- meets the orders of the reported periods, not all history
            and orders.ordered_at >= (select min({{ period_start_at }}) from {{ periods }})
            and orders.ordered_at < (select max({{ period_end_at }}) from {{ periods }})
    ),

    buyers_in_period as (
        select distinct
            period_key,
            customer_id
        from completed_orders_in_period
    ),

    stage_counts as (
        select
            stage_flows.period_key,
            count(*) filter (
                where stage_flows.stage_at_start is not null
                    and stage_flows.stage_at_start != 'churned'
            ) as customers_at_start,
            count(*) filter (where stage_flows.stage_at_end != 'churned') as customers_at_end,
            count(*) filter (where stage_flows.stage_at_end = 'active') as active_customers,
            count(*) filter (
                where stage_flows.first_order_at >= stage_flows.period_start_at
            ) as new_customers,
            count(*) filter (
                where stage_flows.stage_at_end = 'churned'
                    and stage_flows.stage_at_start != 'churned'
            ) as churned_customers,
            count(*) filter (
                where stage_flows.stage_at_start in ('potential churn', 'churned')
                    and buyers_in_period.customer_id is not null
            ) as reactivated_customers,
            count(*) filter (
                where stage_flows.stage_at_start in ('potential churn', 'churned')
            ) as potential_or_churned_at_start,
            -- lifetime of the customers who entered churned in the period
            avg(
                {{ days_between('stage_flows.first_order_at', 'stage_flows.last_order_at') }}
            ) filter (
                where stage_flows.stage_at_end = 'churned'
                    and stage_flows.stage_at_start != 'churned'
            ) as customer_lifetime_days
        from stage_flows
        left join buyers_in_period
            on stage_flows.period_key = buyers_in_period.period_key
            and stage_flows.customer_id = buyers_in_period.customer_id
        group by 1
    ),

    -- the 80/20 check as of each period end: customers with trailing revenue,
    -- best first; the sum of the top k values does not depend on how ties are ordered
    revenue_ranks as (
        select
            at_end.{{ period_key }} as period_key,
            at_end.trailing_12m_revenue,
            row_number() over (
                partition by at_end.{{ period_key }}
                order by at_end.trailing_12m_revenue desc
            ) as revenue_rank,
            count(*) over (partition by at_end.{{ period_key }}) as ranked_customers
        from {{ periods }} as periods
        inner join {{ staged }} as at_end
            on at_end.{{ period_key }} = periods.{{ period_key }}
        where at_end.trailing_12m_revenue > 0
    ),

    revenue_concentration as (
        select
            period_key,
            sum(trailing_12m_revenue) filter (
                where revenue_rank <= ceil(ranked_customers * {{ var('top_customers_share') }})
            ) / sum(trailing_12m_revenue) as top20_revenue_share
        from revenue_ranks
        group by 1
    ),

    order_totals as (
        select
            period_key,
            sum(net_amount) as revenue,
            count(*) as orders
        from completed_orders_in_period
        group by 1
    ),

    survey_totals as (
        select
            periods.{{ period_key }} as period_key,
            count(*) as survey_responses,
            count(*) filter (where surveys.score_group = 'promoter') as promoters,
            count(*) filter (where surveys.score_group = 'detractor') as detractors,
            count(*) filter (where surveys.is_csi_attractor) as csi_attractors,
            count(*) filter (where surveys.is_csi_detractor) as csi_detractors
        from {{ periods }} as periods
        inner join {{ surveys }} as surveys
            on surveys.submitted_at >= periods.{{ period_start_at }}
            and surveys.submitted_at < periods.{{ period_end_at }}
        group by 1
    ),

    counted as (
        select
            periods.{{ period_key }} as period_key,
            coalesce(stage_counts.customers_at_start, 0) as customers_at_start,
            coalesce(stage_counts.customers_at_end, 0) as customers_at_end,
            coalesce(stage_counts.active_customers, 0) as active_customers,
            coalesce(stage_counts.new_customers, 0) as new_customers,
            coalesce(stage_counts.churned_customers, 0) as churned_customers,
            coalesce(stage_counts.reactivated_customers, 0) as reactivated_customers,
            coalesce(stage_counts.potential_or_churned_at_start, 0) as potential_or_churned_at_start,
            coalesce(order_totals.revenue, 0) as revenue,
            coalesce(order_totals.orders, 0) as orders,
            coalesce(survey_totals.survey_responses, 0) as survey_responses,
            coalesce(survey_totals.promoters, 0) as promoters,
            coalesce(survey_totals.detractors, 0) as detractors,
            coalesce(survey_totals.csi_attractors, 0) as csi_attractors,
            coalesce(survey_totals.csi_detractors, 0) as csi_detractors,
            revenue_concentration.top20_revenue_share,
            stage_counts.customer_lifetime_days
        from {{ periods }} as periods
        left join stage_counts
            on periods.{{ period_key }} = stage_counts.period_key
        left join order_totals
            on periods.{{ period_key }} = order_totals.period_key
        left join survey_totals
            on periods.{{ period_key }} = survey_totals.period_key
        left join revenue_concentration
            on periods.{{ period_key }} = revenue_concentration.period_key
    )

    select
        period_key as {{ period_key }},
        customers_at_start,
        customers_at_end,
        active_customers,
        new_customers,
        churned_customers,
        reactivated_customers,
        potential_or_churned_at_start,
        round(churned_customers::numeric / nullif(customers_at_start, 0), 4) as churn_rate,
        round(
            (customers_at_end - new_customers)::numeric / nullif(customers_at_start, 0), 4
        ) as retention_rate,
        round(
            reactivated_customers::numeric / nullif(potential_or_churned_at_start, 0), 4
        ) as reactivation_rate,
        revenue,
        orders,
        round(revenue / nullif(active_customers, 0), 2) as arpu,
        round(revenue / nullif(orders, 0), 2) as average_check,
        survey_responses,
        round(100.0 * (promoters - detractors) / nullif(survey_responses, 0), 1) as nps,
        round(csi_attractors::numeric / nullif(csi_detractors, 0), 2) as csi,
        round(top20_revenue_share, 4) as top20_revenue_share,
        round(customer_lifetime_days, 1) as customer_lifetime_days
    from counted
{%- endmacro %}
