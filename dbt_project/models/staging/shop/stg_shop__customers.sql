with

source as (
    select * from {{ source('shop', 'customers') }}
),

renamed as (
    select
        customer_id,
        nullif(trim(full_name), '') as full_name,
        nullif(trim(email), '') as email,
        nullif(trim(phone), '') as phone,
        manager_id,
        do_not_call,
        marketing_opt_out,
        created_at,
        updated_at,
        _batch_id as batch_id,
        _loaded_at as loaded_at
    from source
),

final as (
    select * from renamed
)

select * from final
