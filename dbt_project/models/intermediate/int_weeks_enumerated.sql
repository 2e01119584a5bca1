-- Week ends as_of - 7*k days for k = 0..kpi_history_weeks: one more week end
-- than reported weeks, so the oldest reported week has a start state.
with

week_indexes as (
    select generate_series(0, {{ var('kpi_history_weeks') }}) as week_index
),

weeks as (
    select
        week_index,
        {{ shift_in_business_tz(as_of(), 'make_interval(days => -7 * (week_index + 1))') }} as week_start_at,
        {{ shift_in_business_tz(as_of(), 'make_interval(days => -7 * week_index)') }} as week_end_at
    from week_indexes
),

final as (
    select * from weeks
)

select * from final
