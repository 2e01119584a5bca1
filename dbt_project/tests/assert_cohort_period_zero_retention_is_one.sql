-- Everyone in a cohort ordered in its first month: period 0 retention is 1.
with

cohorts as (
    select * from {{ ref('rpt_cohort_retention_monthly') }}
),

final as (
    select *
    from cohorts
    where months_since_first = 0
        and (
            customer_retention != 1
            or retained_customers != cohort_size
            or coalesce(revenue_retention, 1) != 1
        )
)

select * from final
