-- Every week end of the history has stages (a run that skipped a week end would
-- leave a hole in the KPI trend). One stage per customer and week end needs no
-- test: the unique index of int_customer_stage_history_weekly enforces it.
with

staged_weekly as (
    select * from {{ ref('int_customers_staged_weekly') }}
),

weeks as (
    select * from {{ ref('int_weeks_enumerated') }}
),

missing_week_ends as (
    select
        weeks.week_index,
        weeks.week_end_at
    from weeks
    where not exists (
        select 1
        from staged_weekly
        where staged_weekly.week_index = weeks.week_index
    )
),

final as (
    select * from missing_week_ends
)

select * from final
