-- Customer satisfaction by calendar quarter (business time zone) and manager, plus one row
-- per quarter for all managers together (manager_id = 'all'): the current
-- quarter up to as_of (is_complete = false) and the
-- satisfaction_history_quarters - 1 quarters before it.
with

surveys as (
    select * from {{ ref('stg_survey_tool__surveys') }}
),

quarter_indexes as (
    select generate_series(0, {{ var('satisfaction_history_quarters') }} - 1) as quarter_index
),

current_quarter as (
    select
        date_trunc(
            'quarter',
            ({{ as_of() }} at time zone {{ business_timezone() }}) - interval '1 microsecond'
        ) as quarter_start
),

quarters as (
    select
        quarter_indexes.quarter_index,
        (current_quarter.quarter_start - make_interval(months => 3 * quarter_indexes.quarter_index))
            at time zone {{ business_timezone() }} as quarter_start_at,
        (current_quarter.quarter_start - make_interval(months => 3 * (quarter_indexes.quarter_index - 1)))
            at time zone {{ business_timezone() }} as next_quarter_start_at
    from quarter_indexes
    cross join current_quarter
),

bounded_quarters as (
    select
        quarter_index,
        quarter_start_at,
        least(next_quarter_start_at, {{ as_of() }}) as quarter_end_at,
        next_quarter_start_at <= {{ as_of() }} as is_complete
    from quarters
),

answers as (
    select
        bounded_quarters.quarter_index,
        coalesce(surveys.manager_id, 'unassigned') as manager_id,
        surveys.score_group,
        surveys.is_csi_attractor,
        surveys.is_csi_detractor
    from bounded_quarters
    inner join surveys
        on surveys.submitted_at >= bounded_quarters.quarter_start_at
        and surveys.submitted_at < bounded_quarters.quarter_end_at
),

by_manager as (
    select
        quarter_index,
        manager_id,
        count(*) as responses,
        count(*) filter (where score_group = 'promoter') as promoters,
        count(*) filter (where score_group = 'passive') as passives,
        count(*) filter (where score_group = 'detractor') as detractors,
        count(*) filter (where is_csi_attractor) as csi_attractors,
        count(*) filter (where is_csi_detractor) as csi_detractors
    from answers
    group by 1, 2
),

-- every quarter has an overall row, even one without answers
all_managers as (
    select
        bounded_quarters.quarter_index,
        'all' as manager_id,
        count(answers.score_group) as responses,
        count(*) filter (where answers.score_group = 'promoter') as promoters,
        count(*) filter (where answers.score_group = 'passive') as passives,
        count(*) filter (where answers.score_group = 'detractor') as detractors,
        count(*) filter (where answers.is_csi_attractor) as csi_attractors,
        count(*) filter (where answers.is_csi_detractor) as csi_detractors
    from bounded_quarters
    left join answers
        on bounded_quarters.quarter_index = answers.quarter_index
    group by 1
),

unioned as (
    select * from by_manager
    union all
    select * from all_managers
),

final as (
    select
        to_char(bounded_quarters.quarter_start_at at time zone {{ business_timezone() }}, 'YYYY-"Q"Q')::text as quarter,
        (bounded_quarters.quarter_start_at at time zone {{ business_timezone() }})::date as quarter_start,
        (bounded_quarters.quarter_end_at at time zone {{ business_timezone() }})::date as quarter_end,
        bounded_quarters.is_complete::boolean as is_complete,
        unioned.manager_id::text as manager_id,
        unioned.responses::integer as responses,
        unioned.promoters::integer as promoters,
        unioned.passives::integer as passives,
        unioned.detractors::integer as detractors,
        round(
            100.0 * (unioned.promoters - unioned.detractors) / nullif(unioned.responses, 0), 1
        )::numeric(5, 1) as nps,
        unioned.csi_attractors::integer as csi_attractors,
        unioned.csi_detractors::integer as csi_detractors,
        round(unioned.csi_attractors::numeric / nullif(unioned.csi_detractors, 0), 2)::numeric(12, 2) as csi
    from unioned
    inner join bounded_quarters
        on unioned.quarter_index = bounded_quarters.quarter_index
)

select * from final
