-- Monthly retention KPIs (calendar months of the business time zone): the kpi_history_months - 1
-- months fully before as_of and the current month up to as_of, flagged
-- is_complete = false. Same measures as rpt_weekly_kpis (macros/period_kpis.sql),
-- with the stage counts, completed orders and revenue from int_stage_flows_monthly
-- and the 80/20 check from int_revenue_concentration_monthly.
with

months as (
    select * from {{ ref('int_months_enumerated') }}
),

stage_flows as (
    select * from {{ ref('int_stage_flows_monthly') }}
),

revenue_concentration as (
    select * from {{ ref('int_revenue_concentration_monthly') }}
),

surveys as (
    select * from {{ ref('stg_survey_tool__surveys') }}
),

reported_months as (
    select *
    from months
    where month_index < {{ var('kpi_history_months') }}
),

kpis as (
    {{ period_kpis(
        'reported_months', 'stage_flows', 'revenue_concentration', 'month_index', 'month_start_at', 'month_end_at',
        'surveys'
    ) }}
),

monthly as (
    select
        (reported_months.month_start_at at time zone {{ business_timezone() }})::date as month_start,
        (reported_months.month_end_at at time zone {{ business_timezone() }})::date as month_end,
        reported_months.is_complete,
        kpis.*
    from reported_months
    inner join kpis
        on reported_months.month_index = kpis.month_index
),

final as (
    select
        to_char(month_start, 'YYYY-MM')::text as month,
        month_start::date as month_start,
        month_end::date as month_end,
        is_complete::boolean as is_complete,
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
    from monthly
)

select * from final
