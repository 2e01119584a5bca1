-- Consent is law: nobody flagged do_not_call is ever on the call list.
with

call_list as (
    select * from {{ ref('rpt_call_list') }}
),

customers as (
    select * from {{ ref('dim_customers') }}
),

final as (
    select call_list.customer_id
    from call_list
    inner join customers
        on call_list.customer_id = customers.customer_id
    where customers.do_not_call
)

select * from final
