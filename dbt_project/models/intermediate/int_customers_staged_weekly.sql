-- The churn stage of every customer with orders, for every week end of the
-- KPI history. The stage itself is defined once, in macros/customer_stages.sql;
-- only orders placed before each week end count, so a past week recomputed
-- later gives the same answer.
with

orders as (
    select * from {{ ref('stg_shop__orders') }}
),

weeks as (
    select * from {{ ref('int_weeks_enumerated') }}
),

staged as (
    {{ customer_stages('weeks', 'week_index', 'week_end_at', 'orders') }}
),

final as (
    select * from staged
)

select * from final
