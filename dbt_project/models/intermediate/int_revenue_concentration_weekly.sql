{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook=[
            "{{ read_one_snapshot() }}",
            "{{ delete_stale_period_ends('week_end_at', ref('int_weeks_enumerated'), ref('stg_shop__orders'), reported_only=true, order_steps=ref('int_customer_order_steps')) }}",
        ],
        indexes=[
            {'columns': ['week_end_at'], 'unique': true},
        ],
    )
}}
-- The 80/20 check as of each week end (macros/revenue_concentration.sql),
-- incremental by week end with the same pre-hook as
-- int_customer_stage_history_weekly: only the week ends the history recomputes
-- are ranked again.
{{ revenue_concentration('week', ref('int_weeks_enumerated'), ref('int_customer_stage_history_weekly')) }}
