-- Weekly retention KPIs for the last kpi_history_weeks weeks [week_start,
-- week_end), the latest ending at as_of. Stage counts come from the weekly
-- stage history; flows compare a customer's stage at week start and end.
with

weeks as (
    select * from {{ ref('int_weeks_enumerated') }}
),

staged_weekly as (
    select * from {{ ref('int_customers_staged_weekly') }}
),

orders as (
    select * from {{ ref('stg_shop__orders') }}
),

surveys as (
    select * from {{ ref('stg_survey_tool__surveys') }}
),

reported_weeks as (
    select *
    from weeks
    where week_index < {{ var('kpi_history_weeks') }}
),

-- the stage of each customer at the start (= previous week end) and end of each week
stage_flows as (
    select
        reported_weeks.week_index,
        reported_weeks.week_start_at,
        at_end.customer_id,
        at_start.churn_stage as stage_at_start,
        at_end.churn_stage as stage_at_end,
        at_end.first_order_at
    from reported_weeks
    inner join staged_weekly as at_end
        on at_end.week_index = reported_weeks.week_index
    left join staged_weekly as at_start
        on at_start.week_index = reported_weeks.week_index + 1
        and at_start.customer_id = at_end.customer_id
),

completed_orders_in_week as (
    select
        reported_weeks.week_index,
        orders.customer_id,
        orders.net_amount
    from reported_weeks
    inner join orders
        on orders.ordered_at >= reported_weeks.week_start_at
        and orders.ordered_at < reported_weeks.week_end_at
    where orders.is_completed
),

buyers_in_week as (
    select distinct
        week_index,
        customer_id
    from completed_orders_in_week
),

stage_counts as (
    select
        stage_flows.week_index,
        count(*) filter (
            where stage_flows.stage_at_start is not null
                and stage_flows.stage_at_start != 'churned'
        ) as customers_at_start,
        count(*) filter (where stage_flows.stage_at_end != 'churned') as customers_at_end,
        count(*) filter (where stage_flows.stage_at_end = 'active') as active_customers,
        count(*) filter (
            where stage_flows.first_order_at >= stage_flows.week_start_at
        ) as new_customers,
        count(*) filter (
            where stage_flows.stage_at_end = 'churned'
                and stage_flows.stage_at_start != 'churned'
        ) as churned_customers,
        count(*) filter (
            where stage_flows.stage_at_start in ('potential churn', 'churned')
                and buyers_in_week.customer_id is not null
        ) as reactivated_customers,
        count(*) filter (
            where stage_flows.stage_at_start in ('potential churn', 'churned')
        ) as potential_or_churned_at_start
    from stage_flows
    left join buyers_in_week
        on stage_flows.week_index = buyers_in_week.week_index
        and stage_flows.customer_id = buyers_in_week.customer_id
    group by 1
),

order_totals as (
    select
        week_index,
        sum(net_amount) as revenue,
        count(*) as orders
    from completed_orders_in_week
    group by 1
),

survey_totals as (
    select
        reported_weeks.week_index,
        count(*) as survey_responses,
        count(*) filter (where surveys.score_group = 'promoter') as promoters,
        count(*) filter (where surveys.score_group = 'detractor') as detractors,
        count(*) filter (where surveys.is_csi_attractor) as csi_attractors,
        count(*) filter (where surveys.is_csi_detractor) as csi_detractors
    from reported_weeks
    inner join surveys
        on surveys.submitted_at >= reported_weeks.week_start_at
        and surveys.submitted_at < reported_weeks.week_end_at
    group by 1
),

weekly as (
    select
        reported_weeks.week_index,
        (reported_weeks.week_start_at at time zone 'utc')::date as week_start,
        (reported_weeks.week_end_at at time zone 'utc')::date as week_end,
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
        coalesce(survey_totals.csi_detractors, 0) as csi_detractors
    from reported_weeks
    left join stage_counts
        on reported_weeks.week_index = stage_counts.week_index
    left join order_totals
        on reported_weeks.week_index = order_totals.week_index
    left join survey_totals
        on reported_weeks.week_index = survey_totals.week_index
),

final as (
    select
        to_char(week_start, 'IYYY-"W"IW')::text as iso_week,
        week_start::date as week_start,
        week_end::date as week_end,
        customers_at_start::integer as customers_at_start,
        customers_at_end::integer as customers_at_end,
        active_customers::integer as active_customers,
        new_customers::integer as new_customers,
        churned_customers::integer as churned_customers,
        reactivated_customers::integer as reactivated_customers,
        potential_or_churned_at_start::integer as potential_or_churned_at_start,
        round(churned_customers::numeric / nullif(customers_at_start, 0), 4)::numeric(10, 4) as churn_rate,
        round(
            (customers_at_end - new_customers)::numeric / nullif(customers_at_start, 0), 4
        )::numeric(10, 4) as retention_rate,
        round(
            reactivated_customers::numeric / nullif(potential_or_churned_at_start, 0), 4
        )::numeric(10, 4) as reactivation_rate,
        revenue::numeric(18, 2) as revenue,
        orders::integer as orders,
        round(revenue / nullif(active_customers, 0), 2)::numeric(18, 2) as arpu,
        round(revenue / nullif(orders, 0), 2)::numeric(18, 2) as average_check,
        survey_responses::integer as survey_responses,
        round(100.0 * (promoters - detractors) / nullif(survey_responses, 0), 1)::numeric(5, 1) as nps,
        round(csi_attractors::numeric / nullif(csi_detractors, 0), 2)::numeric(12, 2) as csi
    from weekly
)

select * from final
