with

source as (
    select * from {{ source_or_empty('call_center', 'call_outcomes', [
        "null::text as attempt_id",
        "null::text as customer_id",
        "null::text as campaign",
        "null::timestamptz as called_at",
        "null::boolean as reached",
        "null::boolean as agreed_to_return",
        "null::text as reason",
        "null::text as agent_id",
        "null::timestamptz as updated_at",
    ]) }}
),

renamed as (
    select
        attempt_id::text as attempt_id,
        customer_id::text as customer_id,
        trim(campaign::text) as campaign,
        called_at::timestamptz as called_at,
        coalesce(reached::boolean, false) as is_reached,
        coalesce(agreed_to_return::boolean, false) as has_agreed_to_return,
        nullif(lower(trim(reason::text)), '') as reason,
        agent_id::text as agent_id,
        updated_at::timestamptz as updated_at
    from source
),

final as (
    select * from renamed
)

select * from final
