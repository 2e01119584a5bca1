-- Service quality by manager (ticket assignee) and ISO week, for tickets
-- created in the last kpi_history_weeks weeks. Everything is as of as_of:
-- a reply or a solution at or after as_of has not happened yet, so a past
-- week recomputed later gives the same answer. Targets per priority come from
-- the seed sla_targets; an unanswered or unsolved ticket older than its target
-- at as_of is a breach already.
with

weeks as (
    select * from {{ ref('int_weeks_enumerated') }}
),

tickets as (
    select * from {{ ref('stg_helpdesk__tickets') }}
),

sla_targets as (
    select * from {{ ref('sla_targets') }}
),

reported_weeks as (
    select *
    from weeks
    where week_index < {{ var('kpi_history_weeks') }}
),

tickets_in_weeks as (
    select
        reported_weeks.week_start_at,
        reported_weeks.week_end_at,
        tickets.ticket_id,
        tickets.customer_id,
        coalesce(tickets.assignee_id, 'unassigned') as manager_id,
        tickets.priority,
        tickets.is_complaint,
        tickets.created_at,
        -- not known yet at as_of
        case when tickets.first_reply_at < {{ as_of() }} then tickets.first_reply_at end as first_reply_at,
        case when tickets.solved_at < {{ as_of() }} then tickets.solved_at end as solved_at
    from reported_weeks
    inner join tickets
        on tickets.created_at >= reported_weeks.week_start_at
        and tickets.created_at < reported_weeks.week_end_at
),

timed as (
    select
        tickets_in_weeks.*,
        extract(epoch from (first_reply_at - created_at)) / 3600.0 as first_reply_hours,
        extract(epoch from (solved_at - created_at)) / 3600.0 as resolution_hours,
        -- how long a ticket has waited so far, for the ones still waiting
        extract(epoch from ({{ as_of() }} - created_at)) / 3600.0 as open_hours,
        sla_targets.first_reply_hours as first_reply_target_hours,
        sla_targets.resolution_hours as resolution_target_hours
    from tickets_in_weeks
    left join sla_targets
        on tickets_in_weeks.priority = sla_targets.priority
),

breaches as (
    select
        *,
        coalesce(first_reply_hours, open_hours) > first_reply_target_hours
            or coalesce(resolution_hours, open_hours) > resolution_target_hours
            as is_sla_breached
    from timed
),

aggregated as (
    select
        week_start_at,
        week_end_at,
        manager_id,
        count(*) as tickets,
        count(distinct customer_id) as customers,
        count(*) filter (where is_complaint) as complaints,
        count(*) filter (where is_complaint and solved_at is not null) as complaints_resolved,
        percentile_cont(0.5) within group (order by first_reply_hours) as first_reply_median_hours,
        percentile_cont(0.5) within group (order by resolution_hours) as resolution_median_hours,
        count(*) filter (where is_sla_breached) as sla_breaches
    from breaches
    group by 1, 2, 3
),

final as (
    select
        to_char(week_start_at at time zone {{ business_timezone() }}, 'IYYY-"W"IW')::text as iso_week,
        (week_start_at at time zone {{ business_timezone() }})::date as week_start,
        (week_end_at at time zone {{ business_timezone() }})::date as week_end,
        manager_id::text as manager_id,
        tickets::integer as tickets,
        customers::integer as customers,
        complaints::integer as complaints,
        complaints_resolved::integer as complaints_resolved,
        round(complaints_resolved::numeric / nullif(complaints, 0), 4)::numeric(10, 4) as complaint_resolution_rate,
        round(first_reply_median_hours::numeric, 2)::numeric(12, 2) as first_reply_median_hours,
        round(resolution_median_hours::numeric, 2)::numeric(12, 2) as resolution_median_hours,
        sla_breaches::integer as sla_breaches,
        round(sla_breaches::numeric / tickets, 4)::numeric(10, 4) as sla_breach_rate
    from aggregated
)

select * from final
