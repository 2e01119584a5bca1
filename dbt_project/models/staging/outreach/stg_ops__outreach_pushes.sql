with

source as (
    select * from {{ source_or_empty('ops', 'outreach_pushes', [
        "null::text as iso_week",
        "null::text as sink",
        "null::text as customer_id",
        "null::text as status",
    ]) }}
),

renamed as (
    select
        iso_week as campaign,
        sink,
        customer_id,
        status,
        status = 'pushed' as is_pushed
    from source
),

final as (
    select * from renamed
)

select * from final
