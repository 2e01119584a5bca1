-- Weekly retention KPIs for the last kpi_history_weeks weeks [week_start,
-- week_end), the latest ending at as_of. Stage counts, completed orders and
-- revenue come from the weekly stage flows (int_stage_flows_weekly: customers
-- by stage at week start and end), the 80/20 check from
-- int_revenue_concentration_weekly. The measures are defined once, in macros/period_kpis.sql (rpt_monthly_kpis uses
-- the same macro).
with

weeks as (
    select * from {{ ref('int_weeks_enumerated') }}
),

stage_flows as (
    select * from {{ ref('int_stage_flows_weekly') }}
),

revenue_concentration as (
    select * from {{ ref('int_revenue_concentration_weekly') }}
),

surveys as (
    select * from {{ ref('stg_survey_tool__surveys') }}
),

reported_weeks as (
    select *
    from weeks
    where week_index < {{ var('kpi_history_weeks') }}
),

kpis as (
    {{ period_kpis(
        'reported_weeks', 'stage_flows', 'revenue_concentration', 'week_index', 'week_start_at', 'week_end_at',
        'surveys'
    ) }}
),

weekly as (
    select
        (reported_weeks.week_start_at at time zone {{ business_timezone() }})::date as week_start,
        (reported_weeks.week_end_at at time zone {{ business_timezone() }})::date as week_end,
        kpis.*
    from reported_weeks
    inner join kpis
        on reported_weeks.week_index = kpis.week_index
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
        churn_rate::numeric(10, 4) as churn_rate,
        retention_rate::numeric(10, 4) as retention_rate,
        reactivation_rate::numeric(10, 4) as reactivation_rate,
        revenue::numeric(18, 2) as revenue,
        orders::integer as orders,
        arpu::numeric(18, 2) as arpu,
        average_check::numeric(18, 2) as average_check,
        survey_responses::integer as survey_responses,
        nps::numeric(5, 1) as nps,
        csi::numeric(12, 2) as csi,
        top20_revenue_share::numeric(10, 4) as top20_revenue_share,
        customer_lifetime_days::numeric(10, 1) as customer_lifetime_days
    from weekly
)

select * from final
