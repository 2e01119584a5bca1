-- Who to call this week, most urgent first, each with a why-now sentence.
-- Consent is law: do_not_call customers never appear.
with

customers as (
    select * from {{ ref('dim_customers') }}
),

callable as (
    select *
    from customers
    where intervention_level in (
        {%- for level in var('call_list_levels') %}
        '{{ level }}'{% if not loop.last %},{% endif %}
        {%- endfor %}
    )
        and not do_not_call
),

explained as (
    select
        *,
        concat_ws(
            '; ',
            concat_ws(', ', churn_stage, 'tier ' || value_tier, rfm_segment)
                || ': ' || recency_days || ' days since last order vs usual '
                || round(expected_gap_days)::integer,
            case
                when open_complaints = 1 then '1 open complaint'
                when open_complaints > 1 then open_complaints || ' open complaints'
            end,
            'last score ' || last_survey_score
        ) as call_reason,
        row_number() over (
            order by
                intervention_priority,
                open_complaints desc,
                trailing_12m_revenue desc,
                customer_id
        ) as call_rank
    from callable
),

final as (
    select
        customer_id::text as customer_id,
        full_name::text as full_name,
        phone::text as phone,
        email::text as email,
        manager_id::text as manager_id,
        intervention_level::text as intervention_level,
        intervention_priority::integer as intervention_priority,
        churn_stage::text as churn_stage,
        value_tier::text as value_tier,
        rfm_segment::text as rfm_segment,
        rfm_cell::text as rfm_cell,
        recency_days::integer as recency_days,
        expected_gap_days::numeric(10, 1) as expected_gap_days,
        gap_ratio::numeric(12, 4) as gap_ratio,
        open_complaints::integer as open_complaints,
        last_survey_score::integer as last_survey_score,
        net_revenue::numeric(18, 2) as net_revenue,
        trailing_12m_revenue::numeric(18, 2) as trailing_12m_revenue,
        call_reason::text as call_reason,
        call_rank::integer as call_rank
    from explained
)

select * from final
