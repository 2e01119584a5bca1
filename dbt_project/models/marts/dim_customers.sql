{{ config(pre_hook="{{ set_local_work_mem() }}") }}
-- One row per customer created before as_of, with everything known about
-- them as of as_of. The stage comes from the k = 0 slice of the weekly
-- staging: there is one definition of a stage.
with

customers as (
    select * from {{ ref('stg_shop__customers') }}
),

staged_weekly as (
    select * from {{ ref('int_customers_staged_weekly') }}
),

rfm_scores as (
    select * from {{ ref('int_customers_rfm_scored') }}
),

value_tiers as (
    select * from {{ ref('int_customers_value_tiered') }}
),

intervention_matrix as (
    select * from {{ ref('intervention_matrix') }}
),

clv_stage_survival as (
    select * from {{ ref('clv_stage_survival') }}
),

tickets as (
    select * from {{ ref('int_tickets_aggregated_to_customers') }}
),

surveys as (
    select * from {{ ref('int_surveys_aggregated_to_customers') }}
),

-- not materialized, as current_stages
customers_as_of as not materialized (
    select *
    from customers
    where created_at < {{ as_of() }}
),

-- not materialized: also read for the base's trailing revenue below
current_stages as not materialized (
    select *
    from staged_weekly
    where week_index = 0
        -- the same slice (week 0 ends at as_of), as a constant the planner takes to
        -- the history's index: through the view alone it scanned every stored week
        -- end (20M rows at 10M orders) to keep one
        and week_end_at = {{ as_of() }}
),

-- the denominator of revenue_share: the trailing revenue of every customer of
-- this table, one scalar instead of a sum() over () window, which held all 1.8M
-- rows in a spilled tuplestore and ran after the parallel part of the query
-- (at 10M orders: the model in 13.1 s against 16.9 s)
base_trailing_revenue as (
    select sum(current_stages.trailing_12m_revenue) as trailing_12m_revenue
    from current_stages
    where current_stages.customer_id in (select customers_as_of.customer_id from customers_as_of)
),

joined as (
    select
        customers_as_of.customer_id,
        customers_as_of.full_name,
        customers_as_of.email,
        customers_as_of.phone,
        customers_as_of.manager_id,
        customers_as_of.do_not_call,
        customers_as_of.marketing_opt_out,
        customers_as_of.created_at,
        current_stages.customer_id is not null as has_orders,
        current_stages.first_order_at,
        current_stages.last_order_at,
        coalesce(current_stages.orders_count, 0) as orders_count,
        coalesce(current_stages.net_revenue, 0) as net_revenue,
        current_stages.recency_days,
        rfm_scores.r_score,
        rfm_scores.f_score,
        rfm_scores.m_score,
        rfm_scores.rfm_cell,
        rfm_scores.rfm_segment,
        current_stages.expected_gap_days,
        current_stages.gap_ratio,
        current_stages.churn_stage,
        coalesce(current_stages.trailing_12m_revenue, 0) as trailing_12m_revenue,
        coalesce(value_tiers.value_tier, 'D') as value_tier,
        coalesce(tickets.open_complaints, 0) as open_complaints,
        coalesce(tickets.tickets_count, 0) as tickets_count,
        surveys.last_survey_score
    from customers_as_of
    left join current_stages
        on customers_as_of.customer_id = current_stages.customer_id
    left join rfm_scores
        on customers_as_of.customer_id = rfm_scores.customer_id
    left join value_tiers
        on customers_as_of.customer_id = value_tiers.customer_id
    left join tickets
        on customers_as_of.customer_id = tickets.customer_id
    left join surveys
        on customers_as_of.customer_id = surveys.customer_id
),

with_interventions as (
    select
        joined.*,
        intervention_matrix.intervention_level,
        intervention_matrix.intervention_priority,
        clv_stage_survival.survival_factor
    from joined
    left join intervention_matrix
        on joined.churn_stage = intervention_matrix.churn_stage
        and joined.value_tier = intervention_matrix.value_tier
    left join clv_stage_survival
        on joined.churn_stage = clv_stage_survival.churn_stage
),

-- customer value: to date, a 12-month forecast from the customer's own rhythm
-- and stage, and the customer's share of the base's trailing revenue
with_values as (
    select
        *,
        net_revenue / nullif(orders_count, 0) as average_order_value,
        {{ var('clv_horizon_days') }} / expected_gap_days
            * (net_revenue / nullif(orders_count, 0))
            * survival_factor::numeric as clv_12m_forecast,
        trailing_12m_revenue / nullif(
            (select base_trailing_revenue.trailing_12m_revenue from base_trailing_revenue), 0
        ) as revenue_share
    from with_interventions
),

final as (
    select
        customer_id::text as customer_id,
        full_name::text as full_name,
        email::text as email,
        phone::text as phone,
        manager_id::text as manager_id,
        do_not_call::boolean as do_not_call,
        marketing_opt_out::boolean as marketing_opt_out,
        created_at::timestamptz as created_at,
        has_orders::boolean as has_orders,
        first_order_at::timestamptz as first_order_at,
        last_order_at::timestamptz as last_order_at,
        orders_count::integer as orders_count,
        net_revenue::numeric(18, 2) as net_revenue,
        recency_days::integer as recency_days,
        r_score::integer as r_score,
        f_score::integer as f_score,
        m_score::integer as m_score,
        rfm_cell::text as rfm_cell,
        rfm_segment::text as rfm_segment,
        expected_gap_days::numeric(10, 1) as expected_gap_days,
        gap_ratio::numeric(12, 4) as gap_ratio,
        churn_stage::text as churn_stage,
        trailing_12m_revenue::numeric(18, 2) as trailing_12m_revenue,
        value_tier::text as value_tier,
        intervention_level::text as intervention_level,
        intervention_priority::integer as intervention_priority,
        open_complaints::integer as open_complaints,
        tickets_count::integer as tickets_count,
        last_survey_score::integer as last_survey_score,
        {{ as_of() }} as as_of,
        net_revenue::numeric(18, 2) as historical_clv,
        round(average_order_value, 2)::numeric(18, 2) as average_order_value,
        round(clv_12m_forecast, 2)::numeric(18, 2) as clv_12m_forecast,
        round(revenue_share, 10)::numeric(14, 10) as revenue_share
    from with_values
)

select * from final
