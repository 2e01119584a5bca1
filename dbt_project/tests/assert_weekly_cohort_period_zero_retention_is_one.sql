-- Everyone in a weekly cohort ordered in its first week: week 0 retention is 1.
with

cohorts as (
    select * from {{ ref('rpt_cohort_retention_weekly') }}
),

final as (
    select *
    from cohorts
    where weeks_since_first = 0
        and (
            customer_retention != 1
            or retained_customers != cohort_size
            or coalesce(revenue_retention, 1) != 1
        )
)

select * from final
