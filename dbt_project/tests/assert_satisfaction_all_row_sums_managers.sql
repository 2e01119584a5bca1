-- In rpt_satisfaction_quarterly the 'all' row of a quarter is the sum of its
-- manager rows, and every quarter of the history has one.
with

satisfaction as (
    select * from {{ ref('rpt_satisfaction_quarterly') }}
),

summed as (
    select
        quarter_start,
        sum(responses) filter (where manager_id != 'all') as manager_responses,
        sum(promoters) filter (where manager_id != 'all') as manager_promoters,
        sum(detractors) filter (where manager_id != 'all') as manager_detractors,
        sum(responses) filter (where manager_id = 'all') as all_responses,
        sum(promoters) filter (where manager_id = 'all') as all_promoters,
        sum(detractors) filter (where manager_id = 'all') as all_detractors,
        count(*) filter (where manager_id = 'all') as all_rows
    from satisfaction
    group by 1
),

final as (
    select *
    from summed
    where all_rows != 1
        or coalesce(manager_responses, 0) != all_responses
        or coalesce(manager_promoters, 0) != all_promoters
        or coalesce(manager_detractors, 0) != all_detractors
    union all
    select null, null, null, null, null, null, null, count(distinct quarter_start)
    from satisfaction
    having count(distinct quarter_start) != {{ var('satisfaction_history_quarters') }}
)

select * from final
