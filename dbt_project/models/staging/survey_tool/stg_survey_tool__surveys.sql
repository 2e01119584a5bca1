with

source as (
    select * from {{ source('survey_tool', 'surveys') }}
),

renamed as (
    select
        response_id,
        customer_id,
        submitted_at,
        score,
        nullif(trim(comment), '') as comment,
        channel,
        manager_id,
        _batch_id as batch_id,
        _loaded_at as loaded_at
    from source
),

categorized as (
    select
        *,
        -- NPS groups are the industry standard, not a business choice
        case
            when score >= 9 then 'promoter'
            when score >= 7 then 'passive'
            else 'detractor'
        end as score_group,
        score >= {{ var('csi_attract_min_score') }} as is_csi_attractor,
        score <= {{ var('csi_detract_max_score') }} as is_csi_detractor
    from renamed
),

final as (
    select * from categorized
)

select * from final
