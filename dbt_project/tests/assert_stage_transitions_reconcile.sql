-- Stage flows add up: per week, the flows out of real stages count every
-- customer with a stage at the week start, the flows out of 'new' are the
-- week's new customers, all flows together are the customers with a stage at
-- the week end, and the flows into churned from another stage are the week's
-- churned customers of rpt_weekly_kpis.
with

transitions as (
    select * from {{ ref('rpt_stage_transitions') }}
),

kpis as (
    select * from {{ ref('rpt_weekly_kpis') }}
),

staged_weekly as (
    select * from {{ ref('int_customers_staged_weekly') }}
),

weeks as (
    select * from {{ ref('int_weeks_enumerated') }}
),

flow_totals as (
    select
        week_start,
        sum(customers) filter (where from_stage != 'new') as from_stages,
        sum(customers) filter (where from_stage = 'new') as from_new,
        sum(customers) as to_stages,
        sum(customers) filter (
            where to_stage = 'churned' and from_stage not in ('churned', 'new')
        ) as into_churned
    from transitions
    group by 1
),

stage_totals as (
    select
        (weeks.week_start_at at time zone {{ business_timezone() }})::date as week_start,
        count(*) filter (where staged_weekly.week_index = weeks.week_index + 1) as at_start,
        count(*) filter (where staged_weekly.week_index = weeks.week_index) as at_end
    from weeks
    inner join staged_weekly
        on staged_weekly.week_index in (weeks.week_index, weeks.week_index + 1)
    where weeks.week_index < {{ var('kpi_history_weeks') }}
    group by 1
),

final as (
    select
        kpis.week_start,
        flow_totals.from_stages,
        stage_totals.at_start,
        flow_totals.from_new,
        kpis.new_customers,
        flow_totals.to_stages,
        stage_totals.at_end,
        flow_totals.into_churned,
        kpis.churned_customers
    from kpis
    left join flow_totals
        on kpis.week_start = flow_totals.week_start
    left join stage_totals
        on kpis.week_start = stage_totals.week_start
    where flow_totals.from_stages is distinct from coalesce(stage_totals.at_start, 0)
        or flow_totals.from_new is distinct from kpis.new_customers
        or flow_totals.to_stages is distinct from coalesce(stage_totals.at_end, 0)
        or flow_totals.from_stages + flow_totals.from_new is distinct from flow_totals.to_stages
        or flow_totals.into_churned is distinct from kpis.churned_customers
)

select * from final
