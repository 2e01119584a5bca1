{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook=[
            "{{ read_one_snapshot() }}",
            "{{ set_local_work_mem() }}",
            "{{ delete_stale_period_ends('month_end_at', ref('int_months_enumerated'), ref('stg_shop__orders'), reported_only=true, order_steps=ref('int_customer_order_steps'), required_columns=['orders', 'revenue']) }}",
        ],
        indexes=[
            {'columns': ['month_end_at', 'from_stage', 'to_stage', 'has_ordered_in_period'], 'unique': true},
        ],
    )
}}
-- Stage flows per month: customers by stage at the month start and end and by
-- whether they ordered in the month (macros/stage_flows.sql). Incremental like
-- int_customer_stage_history_monthly, with the same pre-hook: a month end the
-- history recomputes (or one whose start it recomputes, which is earlier) is
-- dropped here too and counted again, so the stored flows always equal a full
-- recompute, and a normal week counts one or two periods instead of the window.
-- The running month's end state is the weekly history's at as_of
-- (stages_to_date); every period start is a stored complete month.
{{ stage_flows(
    'month',
    ref('int_months_enumerated'),
    stages_to_date(ref('int_customer_stage_history_monthly'), ref('int_customer_stage_history_weekly')),
    start_history=ref('int_customer_stage_history_monthly'),
    seen=stages_to_date_seen(ref('int_customer_stage_history_monthly'), ref('int_customer_stage_history_weekly'))
) }}
