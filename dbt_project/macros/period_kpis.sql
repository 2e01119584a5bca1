{#-
    Retention KPIs per reporting period, written once for weeks and months.

    `periods`: CTE of the reported periods with columns `period_key`,
    `period_start_at`, `period_end_at` ([start, end), timestamptz).
    `flows`: int_stage_flows_<grain> (customers by stage at the period start
    and end and by whether they ordered in the period, with the completed
    orders they placed in it and their net revenue), `concentration`:
    int_revenue_concentration_<grain>; both keyed by the period end, under the
    same column name as `period_end_at`. `surveys`: a CTE shaped like the
    staging model.

    Returns a query with one row per period key and every measure already
    rounded; the calling model adds the period labels and casts.
-#}
{% macro period_kpis(periods, flows, concentration, period_key, period_start_at, period_end_at, surveys) -%}
    with

    -- 'new' = no stage at the period start: no completed order before it
    stage_counts as (
        select
            {{ period_end_at }} as period_end_at,
            sum(customers) filter (
                where from_stage not in ('new', 'churned')
            ) as customers_at_start,
            sum(customers) filter (where to_stage != 'churned') as customers_at_end,
            sum(customers) filter (where to_stage = 'active') as active_customers,
            sum(customers) filter (where from_stage = 'new') as new_customers,
            sum(customers) filter (
                where to_stage = 'churned' and from_stage not in ('new', 'churned')
            ) as churned_customers,
            sum(customers) filter (
                where from_stage in ('potential churn', 'churned') and has_ordered_in_period
            ) as reactivated_customers,
            sum(customers) filter (
                where from_stage in ('potential churn', 'churned')
            ) as potential_or_churned_at_start,
            -- completed orders placed in the period and their net revenue: every
            -- customer who placed one has a stage at the period end, so the flows
            -- hold them all
            sum(orders) as orders,
            sum(revenue) as revenue,
            -- lifetime of the customers who entered churned in the period
            sum(lifetime_days_sum) filter (
                where to_stage = 'churned' and from_stage not in ('new', 'churned')
            )::numeric / nullif(sum(customers) filter (
                where to_stage = 'churned' and from_stage not in ('new', 'churned')
            ), 0) as customer_lifetime_days
        from {{ flows }}
        group by 1
    ),

    revenue_concentration as (
        select
            {{ period_end_at }} as period_end_at,
            top_customers_revenue / nullif(trailing_revenue, 0) as top20_revenue_share
        from {{ concentration }}
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
            coalesce(stage_counts.revenue, 0) as revenue,
            coalesce(stage_counts.orders, 0) as orders,
            coalesce(survey_totals.survey_responses, 0) as survey_responses,
            coalesce(survey_totals.promoters, 0) as promoters,
            coalesce(survey_totals.detractors, 0) as detractors,
            coalesce(survey_totals.csi_attractors, 0) as csi_attractors,
            coalesce(survey_totals.csi_detractors, 0) as csi_detractors,
            revenue_concentration.top20_revenue_share,
            stage_counts.customer_lifetime_days
        from {{ periods }} as periods
        left join stage_counts
            on periods.{{ period_end_at }} = stage_counts.period_end_at
        left join survey_totals
            on periods.{{ period_key }} = survey_totals.period_key
        left join revenue_concentration
            on periods.{{ period_end_at }} = revenue_concentration.period_end_at
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
