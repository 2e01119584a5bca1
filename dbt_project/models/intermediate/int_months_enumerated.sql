-- Calendar months (business time zone) of the monthly KPI history: the month containing the
-- last moment before as_of (possibly partial, then it ends at as_of) and the
-- kpi_history_months - 1 months before it, plus one more month index whose
-- end is the start of the oldest reported month, so that month has a start state.
with

month_indexes as (
    select generate_series(0, {{ var('kpi_history_months') }}) as month_index
),

current_month as (
    select
        date_trunc(
            'month',
            ({{ as_of() }} at time zone {{ business_timezone() }}) - interval '1 microsecond'
        ) as month_start
),

months as (
    select
        month_indexes.month_index,
        current_month.month_start - make_interval(months => month_indexes.month_index) as month_start,
        current_month.month_start - make_interval(months => month_indexes.month_index - 1) as next_month_start
    from month_indexes
    cross join current_month
),

bounded as (
    select
        month_index,
        (month_start at time zone {{ business_timezone() }}) as month_start_at,
        least(next_month_start at time zone {{ business_timezone() }}, {{ as_of() }}) as month_end_at,
        next_month_start at time zone {{ business_timezone() }} <= {{ as_of() }} as is_complete
    from months
),

final as (
    select * from bounded
)

select * from final
