{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook=[
            "{{ read_one_snapshot() }}",
            "{{ delete_stale_period_ends('month_end_at', ref('int_months_enumerated'), ref('stg_shop__orders'), reported_only=true, order_steps=ref('int_customer_order_steps')) }}",
        ],
        indexes=[
            {'columns': ['month_end_at'], 'unique': true},
        ],
    )
}}
-- The 80/20 check as of each month end (macros/revenue_concentration.sql),
-- incremental by month end with the same pre-hook as
-- int_customer_stage_history_monthly: only the month ends the history recomputes
-- are ranked again. The running month is the weekly history's at as_of.
{{ revenue_concentration(
    'month',
    ref('int_months_enumerated'),
    ref('int_customer_stage_history_monthly'),
    running=ref('int_customer_stage_history_weekly'),
    seen=stages_to_date_seen(ref('int_customer_stage_history_monthly'), ref('int_customer_stage_history_weekly'))
) }}
