-- The churn stage of every customer with orders at each week end of this run's
-- window (int_weeks_enumerated): the stored history
-- (int_customer_stage_history_weekly) with the run's week_index attached.
{{ stages_in_window('week', ref('int_customer_stage_history_weekly'), ref('int_weeks_enumerated')) }}
