{#-
    A fingerprint of the business vars that the models kept incrementally by
    period end (the stage histories, the stage flows, the revenue
    concentration) are computed with. Each stored row carries it as
    `settings_key`, and delete_stale_period_ends drops every row computed with
    other settings, so changing a threshold in dbt_project.yml or with --vars
    recomputes the stored periods instead of mixing old and new answers.
    The business time zone counts too (it moves every period end). Changing
    any of them recomputes all six models (one key for all: a var
    change is rare, and a half-updated set of models is worse than a slower run).
-#}
{% macro period_settings_key() -%}
    {%- set names = [
        'stage_churn_risk_ratio', 'stage_potential_churn_ratio', 'stage_churned_ratio',
        'min_orders_for_own_rhythm', 'min_expected_gap_days', 'trailing_revenue_months',
        'top_customers_share',
    ] -%}
    {%- set parts = [] -%}
    {%- for name in names -%}
        {%- do parts.append(name ~ '=' ~ var(name)) -%}
    {%- endfor -%}
    {#- the time zone moves every period end; left out while it is UTC, so the
        periods stored before it was a setting keep their key -#}
    {%- set zone = business_timezone_name() | trim -%}
    {%- if zone | upper != 'UTC' -%}
        {%- do parts.append('business_timezone=' ~ zone) -%}
    {%- endif -%}
    '{{ local_md5(parts | join(';')) }}'
{%- endmacro %}
