{#-
    The reported periods of `periods` (a CTE shaped like int_weeks_enumerated
    or int_months_enumerated) that the incremental model being built does not
    store yet (all of them on a first or --full-refresh build), as
    `period_start_at`, `period_end_at`. The oldest period end of the window is
    only the start state of the oldest reported period, not a period of its
    own. Shared by stage_flows and revenue_concentration.
-#}
{% macro reported_periods_to_build(period, periods) -%}
    select
        {{ period }}_start_at as period_start_at,
        {{ period }}_end_at as period_end_at
    from {{ periods }}
    where {{ period }}_index < {{ var('kpi_history_' ~ period ~ 's') }}
    {%- if is_incremental() %}
        and not exists (
            select from {{ this }} as stored
            where stored.{{ period }}_end_at = {{ periods }}.{{ period }}_end_at
        )
    {%- endif %}
{%- endmacro %}
