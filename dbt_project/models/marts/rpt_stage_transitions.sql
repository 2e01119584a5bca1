-- Flows between churn stages, week by week: for each of the last
-- kpi_history_weeks weeks, how many customers went from their stage at the
-- week start to their stage at the week end. Customers whose first completed
-- order falls in the week come from 'new'. Every combination is present (zero
-- when nobody moved), so week-over-week comparisons never miss a row.
with

weeks as (
    select * from {{ ref('int_weeks_enumerated') }}
),

stage_flows as (
    select * from {{ ref('int_stage_flows_weekly') }}
),

reported_weeks as (
    select *
    from weeks
    where week_index < {{ var('kpi_history_weeks') }}
),

stages as (
    {%- for stage in churn_stages() %}
    select '{{ stage }}' as stage, {{ loop.index }} as stage_order
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

from_stages as (
    select 'new' as from_stage, 0 as from_stage_order
    union all
    select stage, stage_order from stages
),

-- a customer with a stage at the week end either had one at the week start
-- (one week end earlier) or placed a first order during the week ('new')
flows as (
    select
        week_end_at,
        from_stage,
        to_stage,
        sum(customers) as customers
    from stage_flows
    group by 1, 2, 3
),

grid as (
    select
        reported_weeks.week_index,
        reported_weeks.week_start_at,
        reported_weeks.week_end_at,
        from_stages.from_stage,
        from_stages.from_stage_order,
        stages.stage as to_stage,
        stages.stage_order as to_stage_order
    from reported_weeks
    cross join from_stages
    cross join stages
),

counted as (
    select
        grid.*,
        coalesce(flows.customers, 0) as customers,
        sum(coalesce(flows.customers, 0)) over (
            partition by grid.week_index, grid.from_stage
        ) as from_stage_customers
    from grid
    left join flows
        on grid.week_end_at = flows.week_end_at
        and grid.from_stage = flows.from_stage
        and grid.to_stage = flows.to_stage
),

final as (
    select
        to_char(week_start_at at time zone {{ business_timezone() }}, 'IYYY-"W"IW')::text as iso_week,
        (week_start_at at time zone {{ business_timezone() }})::date as week_start,
        (week_end_at at time zone {{ business_timezone() }})::date as week_end,
        from_stage::text as from_stage,
        from_stage_order::integer as from_stage_order,
        to_stage::text as to_stage,
        to_stage_order::integer as to_stage_order,
        customers::integer as customers,
        round(customers::numeric / nullif(from_stage_customers, 0), 4)::numeric(10, 4) as share_of_from_stage
    from counted
)

select * from final
