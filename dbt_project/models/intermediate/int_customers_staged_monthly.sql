-- The churn stage of every customer with orders at each month end of this run's
-- window (int_months_enumerated): the stored history
-- (int_customer_stage_history_monthly) with the run's month_index attached.
{{ stages_in_window('month', ref('int_customer_stage_history_monthly'), ref('int_months_enumerated')) }}
