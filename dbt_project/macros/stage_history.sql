{#-
    The bodies of the stage-history models, written once for weeks and months.

    stage_history(period, period_ends): the select of
    int_customer_stage_history_<grain>: the stages (macros/customer_stages.sql)
    at the period ends of `period_ends` that the stored history does not have
    yet (all of them on a first or --full-refresh build), and at the period
    ends it keeps, those of the customers the pre-hook deleted there
    (`stage_history_redo`, macros/delete_stale_period_ends.sql), with the
    highest load batch the order steps it read reflect (`loaded_through`, read
    by the pre-hook on the next run).

    With `store_end_at_as_of=false` (the monthly history) the period ending
    at as_of is not stored: it is the running month, replaced every week, and
    stages_to_date reads it from the weekly history, which has that instant
    as its week end at as_of. Only complete months are stored, so a week that
    crosses no month end writes nothing. At 10M orders the running month had
    cost a copy of 1.65M rows from the weekly history and the delete of last
    week's copy every week; the monthly history's task in the benchmark's
    incremental week went from 16.0 to 9.0 s (that week crosses a month end,
    whose complete month it still computes).

    stages_in_window(period, history, period_ends): the select of
    int_customers_staged_<grain>: the stored stages at this run's period ends,
    with the run's `<period>_index` attached.

    stages_to_date(monthly, weekly): the monthly history with its running
    month, as a relation for the readers of the monthly stages
    (int_customers_staged_monthly, the monthly flows' end states; the 80/20
    check joins each history on its own, macros/revenue_concentration.sql): the
    stored month ends other than as_of, and the weekly history's week end at
    as_of as the month end at as_of. Both are stages at an instant
    (macros/customer_stages.sql) and the stage at an instant depends on the
    instant alone, so the rows are the ones the monthly history would compute.

    stages_to_date_seen(monthly, weekly): the highest load batch those rows
    reflect, for the readers' loaded_through: the lower of what each history
    has seen (the monthly one's rows or its `__seen` record,
    macros/stage_history_seen.sql; the weekly one's rows, whose end at as_of
    is written every run). Each max() is read off its history's
    loaded_through index; a max() over the union read every row (4 s at 10M
    orders).
-#}
{% macro stage_history(period, period_ends, store_end_at_as_of=true) -%}
    with

    periods as (
        select * from {{ period_ends }}
        {%- if not store_end_at_as_of %}
        where {{ period }}_end_at < {{ as_of() }}
        {%- endif %}
    ),

    periods_to_build as (
        select *
        from periods
        {% if is_incremental() -%}
        where not exists (
            select from {{ this }} as stored
            where stored.{{ period }}_end_at = periods.{{ period }}_end_at
        )
            and {{ period }}_end_at not in (select period_end_at from stage_history_redo)
        {%- endif %}
    ),

    staged as (
        {{ customer_stages(
            'periods_to_build', period ~ '_index', period ~ '_end_at', ref('int_customer_order_steps')
        ) }}
    ),
    {%- if is_incremental() %}

    -- the period ends the pre-hook kept, for the customers whose rows there it
    -- deleted (stage_history_redo, see macros/delete_stale_period_ends.sql):
    -- their own steps, the population's first gaps over everyone's
    periods_to_redo as (
        select *
        from periods
        where {{ period }}_end_at in (select period_end_at from stage_history_redo)
    ),

    -- materialized: a few customers' steps, read three times inside
    -- customer_stages, found by one scan of the steps instead of three
    steps_to_redo as materialized (
        select *
        from {{ ref('int_customer_order_steps') }}
        where customer_id in (select customer_id from stage_history_redo)
    ),

    restaged as (
        select restaged.*
        from (
            {{ customer_stages(
                'periods_to_redo', period ~ '_index', period ~ '_end_at', 'steps_to_redo',
                population_steps=ref('int_customer_order_steps')
            ) | indent(8) }}
        ) as restaged
        inner join stage_history_redo as redo
            on redo.period_end_at = restaged.{{ period }}_end_at
            and redo.customer_id = restaged.customer_id
    ),
    {%- endif %}

    final as (
        select
            staged.*,
            {{ period_bookkeeping_columns(ref('int_customer_order_steps')) }}
        from staged
        {%- if is_incremental() %}
        union all
        select
            restaged.*,
            {{ period_bookkeeping_columns(ref('int_customer_order_steps')) }}
        from restaged
        {%- endif %}
    )

    select * from final
    -- written in the order of the table's unique index (period end, customer),
    -- first build included, so that each period end's rows sit together on disk:
    -- the readers take one or a few period ends (the flows, RFM, dim_customers,
    -- the monthly history's copy). Unordered, a first build wrote customer after
    -- customer, and the rows of one week end were spread ~4 to a page over the
    -- whole table (at 10M orders: 1.6M rows over ~400k of its 446k pages). On an
    -- incremental run each new row also lands on the index page the previous
    -- one filled, instead of on a random page of an index larger than the
    -- server's buffers.
    order by {{ period }}_end_at, customer_id
{%- endmacro %}


{% macro stages_in_window(period, history, period_ends) -%}
    with

    history as (
        select * from {{ history }}
    ),

    periods as (
        select * from {{ period_ends }}
    ),

    final as (
        select
            history.customer_id,
            periods.{{ period }}_index,
            history.{{ period }}_end_at,
            history.first_order_at,
            history.last_order_at,
            history.orders_count,
            history.net_revenue,
            history.trailing_12m_revenue,
            history.recency_days,
            history.expected_gap_days,
            history.gap_ratio,
            history.churn_stage
        from history
        inner join periods
            on history.{{ period }}_end_at = periods.{{ period }}_end_at
    )

    select * from final
{%- endmacro %}


{% macro stages_to_date(monthly, weekly) -%}
    {%- set columns = stage_history_columns() -%}
    (
        select customer_id, month_end_at, {{ columns | join(', ') }}
        from {{ monthly }}
        -- a month end at as_of stored by a later run (a backfill's as_of on a month
        -- start) is the weekly one's too: read once
        where month_end_at <> {{ as_of() }}
        union all
        select customer_id, week_end_at, {{ columns | join(', ') }}
        from {{ weekly }}
        where week_end_at = {{ as_of() }}
    ) as stages_to_date
{%- endmacro %}


{% macro stages_to_date_seen(monthly, weekly) -%}
    least(
        {{ stage_history_seen_through(monthly) }},
        (select coalesce(max(loaded_through), 0) from {{ weekly }})
    )
{%- endmacro %}


{#- the columns of a stage history besides its keys (customer, period end): what
    customer_stages computes and the bookkeeping of macros/period_bookkeeping_columns.sql -#}
{% macro stage_history_columns(with_bookkeeping=true) -%}
    {%- set columns = [
        'first_order_at', 'last_order_at', 'orders_count', 'net_revenue', 'trailing_12m_revenue',
        'recency_days', 'expected_gap_days', 'gap_ratio', 'churn_stage', 'population_gap_days',
    ] -%}
    {{- return(columns + (['loaded_through', 'settings_key'] if with_bookkeeping else [])) -}}
{%- endmacro %}
