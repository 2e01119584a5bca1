{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        unlogged=true,
        pre_hook=[
            "{{ read_one_snapshot() }}",
            "{{ set_local_work_mem() }}",
            "{{ delete_stale_period_ends('month_end_at', ref('int_months_enumerated'), ref('stg_shop__orders'), order_steps=ref('int_customer_order_steps'), redo_customers=true, records_seen=true) }}",
            "{{ copy_same_instants('month', ref('int_months_enumerated'), ref('int_customer_stage_history_weekly'), ref('int_customer_order_steps'), source('shop', 'orders')) }}",
        ],
        post_hook=[
            "{{ analyze_if_written() }}",
            "{{ record_stage_history_seen(ref('int_customer_order_steps')) }}",
        ],
        indexes=[
            {'columns': ['month_end_at', 'customer_id'], 'unique': true},
            {'columns': ['loaded_through']},
        ],
    )
}}
-- Analyzed at once (post-hook) when the run wrote rows: a new table has no
-- statistics, and after an incremental run the new period end has none either,
-- while the stage flows and the 80/20 check read it in the same run (the stage
-- histories' readers were the slowest steps of the 10M-order benchmark built
-- without it). A run that wrote nothing keeps true statistics and skips it
-- (macros/analyze_if_written.sql).
-- The churn stage of every customer with orders, kept per complete month: the
-- month ends of the window before as_of. The running month (the month end at
-- as_of) is not stored: its stages are the weekly history's at as_of, and the
-- readers take them from there (stages_to_date in macros/stage_history.sql). A
-- run computes only the month ends of its window that are not stored yet, after
-- its pre-hook dropped those that orders loaded since could change: a week that
-- crosses no month end and that no late change reaches writes nothing, and the
-- result equals a full recompute (--full-refresh). The post-hook records what the
-- run saw even then (macros/stage_history_seen.sql). The body is
-- macros/stage_history.sql; the stage itself is macros/customer_stages.sql.
-- Unlogged: tens of millions of derived rows are written without WAL. A crash
-- empties the table and the next run recomputes every period end of its window
-- (slower, same answer); a hot standby does not have it (BI reads marts only).
-- A complete month that began on a Monday ends at a week end: such an end is
-- copied from the weekly history, built earlier in the run, when it has seen
-- every loaded order (macros/copy_same_instants.sql): not computed twice.
-- depends_on: {{ ref('int_customer_stage_history_weekly') }}
{{ stage_history('month', ref('int_months_enumerated'), store_end_at_as_of=false) }}
