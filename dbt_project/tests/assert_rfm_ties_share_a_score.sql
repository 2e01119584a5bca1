-- Equal recency, frequency or monetary values always get equal scores.
with

scores as (
    select * from {{ ref('int_customers_rfm_scored') }}
),

final as (
    select 'recency' as score, recency_days::numeric as value
    from scores
    group by recency_days
    having count(distinct r_score) > 1
    union all
    select 'frequency', frequency::numeric
    from scores
    group by frequency
    having count(distinct f_score) > 1
    union all
    select 'monetary', monetary
    from scores
    group by monetary
    having count(distinct m_score) > 1
)

select * from final
