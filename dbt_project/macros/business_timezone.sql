{#-
    The business time zone as a SQL literal: where a day, an ISO week, a month
    and a quarter begin for every date, label and calendar shift of the project
    (RETENTION_TIMEZONE, the zone the Airflow DAGs' intervals are in, read by
    the var business_timezone in dbt_project.yml; UTC when unset). Naming the
    zone keeps every result independent of the session's TimeZone setting.
-#}
{% macro business_timezone() -%}
    '{{ business_timezone_name() | replace("'", "''") }}'
{%- endmacro %}

{#- The zone's name itself (UTC when the var is unset or blank), for Jinja. -#}
{% macro business_timezone_name() -%}
    {{- (var('business_timezone', 'UTC') | string | trim) or 'UTC' -}}
{%- endmacro %}
