{{ config(materialized='table', pre_hook="{{ set_local_work_mem() }}") }}
-- A table, not a view: its data tests and dim_customers would each recompute the
-- ranking over every customer (at 10M orders each test of the view took 12-17 s).
-- RFM as of as_of, among customers with at least one completed order.
-- Scores are quantiles, higher is better, and ties always share a score.
with

staged_weekly as (
    select * from {{ ref('int_customers_staged_weekly') }}
),

-- the 25 cells as one jsonb object, read once: joined instead, the planner
-- hashed all 1.6M scored rows to probe them (the model at 10M orders,
-- 2026-12-06: 13.7-14.4 s joined, 10.4 s with the lookup; same rows)
segment_lookup as (
    select jsonb_object_agg(r_score || ',' || fm_score, segment) as segments
    from {{ ref('rfm_segment_map') }}
),

current_customers as (
    select
        customer_id,
        recency_days,
        orders_count as frequency,
        net_revenue as monetary
    from staged_weekly
    where week_index = 0
        -- the same slice (week 0 ends at as_of), as a constant the planner takes to
        -- the history's index: through the view alone it scanned every stored week
        -- end (20M rows at 10M orders) to keep one
        and week_end_at = {{ as_of() }}
),

scored as (
    select
        *,
        {{ quantile_score('recency_days desc', var('rfm_bins')) }} as r_score,
        {{ quantile_score('frequency', var('rfm_bins')) }} as f_score,
        {{ quantile_score('monetary', var('rfm_bins')) }} as m_score
    from current_customers
),

-- the segment map is on the 1..5 scale
scaled as (
    select
        *,
        ceil(r_score * 5.0 / {{ var('rfm_bins') }})::integer as r_score_5,
        round(
            (
                ceil(f_score * 5.0 / {{ var('rfm_bins') }})
                + ceil(m_score * 5.0 / {{ var('rfm_bins') }})
            ) / 2.0
        )::integer as fm_score_5
    from scored
),

segmented as (
    select
        scaled.customer_id,
        scaled.recency_days,
        scaled.frequency,
        scaled.monetary,
        scaled.r_score,
        scaled.f_score,
        scaled.m_score,
        scaled.r_score::text || scaled.f_score::text || scaled.m_score::text as rfm_cell,
        (select segments from segment_lookup)
            ->> (scaled.r_score_5 || ',' || scaled.fm_score_5) as rfm_segment
    from scaled
),

final as (
    select * from segmented
)

select * from final
