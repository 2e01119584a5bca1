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

-- one hash join of the two on customer_id (two EXCEPTs sorted or hashed both
-- sides twice: 4.2 s a run at 1.6M customers)
final as (
    select
        case
            when this_week.customer_id is null then 'missing in fct'
            when expected.customer_id is null then 'extra in fct'
            else 'different in fct'
        end as problem,
        coalesce(expected.customer_id, this_week.customer_id) as customer_id,
        expected.churn_stage as expected_churn_stage,
        this_week.churn_stage,
        expected.value_tier as expected_value_tier,
        this_week.value_tier,
        expected.intervention_level as expected_intervention_level,
        this_week.intervention_level
    from expected
    full join this_week
        on expected.customer_id = this_week.customer_id
    where expected.customer_id is null
        or this_week.customer_id is null
        or (expected.churn_stage, expected.value_tier, expected.intervention_level)
            is distinct from (this_week.churn_stage, this_week.value_tier, this_week.intervention_level)
)

select * from final
