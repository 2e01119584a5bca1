with

source as (
    select * from {{ source_or_empty('ops', 'outreach_assignments', [
        "null::text as iso_week",
        "null::text as customer_id",
        "null::integer as call_rank",
        "null::text as arm",
        "null::text as exclusion_reason",
        "null::text as variant",
        "null::text as offer_code",
        "null::text as intervention_level",
        "null::timestamptz as campaign_start",
    ]) }}
),

renamed as (
    select
        iso_week as campaign,
        customer_id,
        call_rank,
        arm,
        exclusion_reason,
        variant,
        offer_code,
        intervention_level,
        campaign_start as campaign_started_at,
        arm = 'treatment' as is_treatment,
        arm = 'holdout' as is_holdout
    from source
),

final as (
    select * from renamed
)

select * from final
