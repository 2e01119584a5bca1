with

source as (
    select * from {{ source('helpdesk', 'tickets') }}
),

renamed as (
    select
        ticket_id,
        customer_id,
        created_at,
        first_reply_at,
        solved_at,
        lower(trim(status)) as status,
        lower(trim(priority)) as priority,
        lower(trim(type)) as ticket_type,
        assignee_id,
        subject,
        updated_at,
        _batch_id as batch_id,
        _loaded_at as loaded_at
    from source
),

categorized as (
    select
        *,
        ticket_type = 'complaint' as is_complaint
    from renamed
),

final as (
    select * from categorized
)

select * from final
