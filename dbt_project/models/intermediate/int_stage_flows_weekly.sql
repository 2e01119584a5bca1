{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook=[
            "{{ read_one_snapshot() }}",
            "{{ set_local_work_mem() }}",
            "{{ delete_stale_period_ends('week_end_at', ref('int_weeks_enumerated'), ref('stg_shop__orders'), reported_only=true, order_steps=ref('int_customer_order_steps'), required_columns=['orders', 'revenue']) }}",
        ],
        indexes=[
            {'columns': ['week_end_at', 'from_stage', 'to_stage', 'has_ordered_in_period'], 'unique': true},
        ],
    )
}}
-- Stage flows per week: customers by stage at the week start and end and by
-- whether they ordered in the week (macros/stage_flows.sql). Incremental like
-- int_customer_stage_history_weekly, with the same pre-hook: a week end the
-- history recomputes (or one whose start it recomputes, which is earlier) is
-- dropped here too and counted again, so the stored flows always equal a full
-- recompute, and a normal week counts one or two periods instead of the window.
{{ stage_flows('week', ref('int_weeks_enumerated'), ref('int_customer_stage_history_weekly')) }}
