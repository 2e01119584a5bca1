-- Why customers say they left, per campaign and script variant: the voice of the
-- customers the campaign reached. Keyed to as_of like rpt_campaign_results.
with

assignments as (
    select * from {{ ref('stg_ops__outreach_assignments') }}
),

outcomes as (
    select * from {{ ref('stg_call_center__call_outcomes') }}
),

called as (
    select
        assignments.campaign,
        assignments.variant,
        outcomes.customer_id,
        outcomes.reason
    from outcomes
    inner join assignments
        on outcomes.campaign = assignments.campaign
        and outcomes.customer_id = assignments.customer_id
        and assignments.is_treatment
    where outcomes.called_at < {{ as_of() }}
        and outcomes.reason is not null
),

counted as (
    select
        campaign,
        variant,
        reason,
        count(distinct customer_id) as customers
    from called
    group by 1, 2, 3
),

final as (
    select
        campaign::text as campaign,
        variant::text as variant,
        reason::text as reason,
        customers::bigint as customers
    from counted
)

select * from final
