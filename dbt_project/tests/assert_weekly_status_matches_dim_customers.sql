-- The week of this run in fct_customer_weekly_status is exactly the customers
-- with orders in dim_customers, with the same stage, tier and level.
with

weekly_status as (
    select * from {{ ref('fct_customer_weekly_status') }}
),

customers as (
    select * from {{ ref('dim_customers') }}
),

this_week as (
    select customer_id, churn_stage, value_tier, intervention_level
    from weekly_status
    where week_end = ({{ as_of() }} at time zone {{ business_timezone() }})::date
),

expected as (
    select customer_id, churn_stage, value_tier, intervention_level
    from customers
    where has_orders
),

final as (
    (select 'missing or different in fct' as problem, * from expected except select 'missing or different in fct', * from this_week)
    union all
    (select 'extra in fct', * from this_week except select 'extra in fct', * from expected)
)

select * from final
