with

source as (
    select * from {{ source('shop', 'orders') }}
),

renamed as (
    select
        order_id,
        customer_id,
        ordered_at,
        -- order dates are calendar days of the business time zone, whatever the
        -- session time zone
        (ordered_at at time zone {{ business_timezone() }})::date as ordered_date,
        lower(trim(status)) as status,
        amount,
        currency,
        updated_at,
        _batch_id as batch_id,
        _loaded_at as loaded_at
    from source
),

categorized as (
    select
        *,
        -- the one definition of net revenue: only completed orders count,
        -- refunded orders contribute 0 and cancelled ones are ignored
        status = 'completed' as is_completed,
        status = 'refunded' as is_refunded,
        status = 'cancelled' as is_cancelled,
        (case when status = 'completed' then amount else 0 end)::numeric(14, 2) as net_amount
    from renamed
),

final as (
    select * from categorized
)

select * from final
