-- rpt_weekly_kpis has exactly kpi_history_weeks consecutive weeks, the latest ending at as_of.
with

kpis as (
    select * from {{ ref('rpt_weekly_kpis') }}
),

summary as (
    select
        count(*) as weeks,
        max(week_end) as latest_week_end,
        max(week_end) - min(week_start) as days_covered
    from kpis
),

final as (
    select *
    from summary
    where weeks != {{ var('kpi_history_weeks') }}
        or latest_week_end != ({{ as_of() }} at time zone {{ business_timezone() }})::date
        or days_covered != 7 * {{ var('kpi_history_weeks') }}
)

select * from final
