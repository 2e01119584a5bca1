-- A customer has exactly one stage per week end, and every week end of the
-- history is present.
with

staged_weekly as (
    select * from {{ ref('int_customers_staged_weekly') }}
),

weeks as (
    select * from {{ ref('int_weeks_enumerated') }}
),

duplicate_stages as (
    select
        customer_id,
        week_index,
        count(*) as stages,
        'more than one stage' as problem
    from staged_weekly
    group by 1, 2
    having count(*) > 1
),

missing_week_ends as (
    select
        null::text as customer_id,
        weeks.week_index,
        0 as stages,
        'week end without stages' as problem
    from weeks
    where not exists (
        select 1
        from staged_weekly
        where staged_weekly.week_index = weeks.week_index
    )
),

final as (
    select * from duplicate_stages
    union all
    select * from missing_week_ends
)

select * from final
