-- The churn stage of every customer with orders at each month end of this run's
-- window (int_months_enumerated): the stored complete months
-- (int_customer_stage_history_monthly) and the running month, the weekly history's
-- stages at as_of (stages_to_date), with the run's month_index attached.
{{ stages_in_window(
    'month',
    stages_to_date(ref('int_customer_stage_history_monthly'), ref('int_customer_stage_history_weekly')),
    ref('int_months_enumerated')
) }}
