{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ delete_stale_period_ends('month_end_at', ref('int_months_enumerated'), ref('stg_shop__orders')) }}",
        indexes=[
            {'columns': ['month_end_at', 'customer_id'], 'unique': true},
            {'columns': ['loaded_through']},
        ],
    )
}}
-- The churn stage of every customer with orders, kept per month end. A run computes
-- only the month ends of its window that are not stored yet, after its pre-hook
-- dropped the one ending at as_of and those that orders loaded since could
-- change: a normal week adds a period or two instead of recomputing the whole
-- window, and the result equals a full recompute (--full-refresh). The body is
-- macros/stage_history.sql; the stage itself is macros/customer_stages.sql.
{{ stage_history('month', ref('int_months_enumerated')) }}
