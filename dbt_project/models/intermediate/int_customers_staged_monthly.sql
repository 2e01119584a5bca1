-- The churn stage of every customer with orders at every month end of the
-- monthly KPI history (the current partial month ends at as_of). Same
-- definition as the weekly history: macros/customer_stages.sql.
with

orders as (
    select * from {{ ref('stg_shop__orders') }}
),

months as (
    select * from {{ ref('int_months_enumerated') }}
),

staged as (
    {{ customer_stages('months', 'month_index', 'month_end_at', 'orders') }}
),

final as (
    select * from staged
)

select * from final
