-- rpt_monthly_kpis holds kpi_history_months consecutive calendar months, the
-- latest ending at as_of, and only the latest may be incomplete.
with

kpis as (
    select * from {{ ref('rpt_monthly_kpis') }}
),

ordered as (
    select
        *,
        lag(month_end) over (order by month_start) as previous_month_end,
        row_number() over (order by month_start desc) as recency_rank
    from kpis
),

problems as (
    select 'gap between months' as problem, month
    from ordered
    where previous_month_end is not null and previous_month_end != month_start
    union all
    select 'incomplete month before the latest', month
    from ordered
    where recency_rank > 1 and not is_complete
    union all
    select 'latest month does not end at as_of', month
    from ordered
    where recency_rank = 1 and month_end != ({{ as_of() }} at time zone {{ business_timezone() }})::date
    union all
    select 'wrong number of months', null
    from (select count(*) as months from kpis) as counted
    where months != {{ var('kpi_history_months') }}
),

final as (
    select * from problems
)

select * from final
