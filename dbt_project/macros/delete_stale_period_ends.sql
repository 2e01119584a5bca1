{#-
    Pre-hook of a stage history keyed on its period ends (see
    int_customer_stage_history_weekly): before the run adds the period ends it
    does not have yet, delete the rows it must not keep:
      * the period ending at as_of, so a re-run of the same week recomputes it;
      * every period end after the earliest order that raw received (or saw
        change: a refund, a cancellation) since the history was last brought up
        to date (`loaded_through`, the highest load batch its runs had seen),
        or after the old time of an order moved later in time (raw has only its
        new time; with `order_steps`, the steps' redo log has the old one):
        those stages could differ now, so they are recomputed, and the history
        stays equal to a full recompute. Late changes to old orders make a run
        recompute further back; a normal week recomputes one or two periods;
      * period ends inside this run's window that are not among its period ends
        (a partial month computed by an earlier run, as of an earlier date);
      * period ends older than the window (nothing reads them; a backfill that
        needs them again recomputes them);
      * every row computed with other business vars (`settings_key`, see
        macros/period_settings_key.sql), and every row of a table stored before
        it had that column or any of `required_columns` (on_schema_change:
        append_new_columns adds them empty to the stored rows, which must be
        computed again to fill them: the stage flows' orders and revenue).
    Rows of period ends after as_of (kept by a later run during a backfill) stay.
    With `records_seen` (a history that does not write rows every run, the
    monthly one), what the history last saw is the higher of its rows'
    `loaded_through` and the one its post-hook recorded
    (macros/stage_history_seen.sql).

    The table holds customers x period ends rows (tens of millions at a million
    customers) but only a few dozen period ends, and each run stores whole
    period ends computed with one settings_key. So the tests above are made per
    period end, not per row: the stored period ends are read off the index that
    leads with the period end (a loose index scan, one probe per end, as
    PostgreSQL has no skip scan for min/next), a probe row of each gives its
    settings_key. The stage histories then delete one stale end at a time, the
    end a constant the planner sees (the flows and the 80/20 check, a few rows
    per end, in one statement): a normal week reads a few index pages and the
    one or two period ends it drops, where a per-row filter read the whole
    stored history.

    With `reported_only` (the stage flows and the revenue concentration, which
    keep only the reported periods), the window is the reported periods of
    `period_ends` (`<period>_index < kpi_history_<period>s`): the oldest period
    end, only the start state of the oldest reported period, is dropped too.

    With `order_steps` and `redo_customers` (the stage histories, one row per
    customer and period end), a period end of the window that only late
    changes reach is not dropped whole: the stages there change only for the
    customers whose order history changed before it. When the steps' redo log
    (macros/order_step_redo_log.sql) describes exactly the steps written since this history last ran (its
    `since_loaded_through` is this history's `loaded_through`, and its
    `loaded_through` the steps' own), the hook deletes, at each such period
    end, the rows of the logged customers whose `touched_at` is before it, and
    leaves those (period end, customer) pairs in the temporary table
    `stage_history_redo` for the model's body to compute again. Unless the
    population's first-gap median there moved (the fallback expected gap of
    every customer with few orders): the hook recomputes it
    (macros/population_first_gaps.sql), compares it with the stored
    `population_gap_days`, and drops the period end whole when it differs. With
    no usable log (a history that missed a run of the steps, a full build of
    the steps, a table stored before `population_gap_days`), and for a touched
    period end after as_of (the body computes only the window), it drops those
    period ends whole, as above; `stage_history_redo` is then empty of them.
-#}
{% macro delete_stale_period_ends(period_end_column, period_ends, orders, reported_only=false, order_steps=none, redo_customers=false, required_columns=[], records_seen=false) -%}
    {%- if is_incremental() -%}
        {%- if reported_only -%}
            {%- set period = period_end_column.replace('_end_at', '') -%}
            {%- set period_ends -%}
                (select * from {{ period_ends }}
                 where {{ period }}_index < {{ var('kpi_history_' ~ period ~ 's') }}) as reported_ends
            {%- endset -%}
        {%- endif -%}
        {%- set stored_columns = adapter.get_columns_in_relation(this) | map(attribute='name') | list if execute else [] -%}
        {%- set missing_columns = (['settings_key'] + required_columns) | reject('in', stored_columns) | list -%}
        {%- set column = period_end_column -%}
        {%- if records_seen -%}
            {%- set seen = stage_history_seen(this) -%}
            {%- set loaded_through = '(select ' ~ stage_history_seen_through(this) ~ ')' -%}
        {%- else -%}
            {%- set loaded_through = '(select coalesce(max(loaded_through), 0) from ' ~ this ~ ')' -%}
        {%- endif -%}
        {%- set log = order_step_redo_log(order_steps) if order_steps is not none else none -%}
        {%- set judged_period_ends -%}
            with recursive stored_ends as (
                (select {{ column }} as period_end from {{ this }} order by 1 limit 1)
                union all
                select (
                    select later.{{ column }} from {{ this }} as later
                    where later.{{ column }} > stored_ends.period_end
                    order by 1 limit 1
                )
                from stored_ends
                where stored_ends.period_end is not null
            )
            select
                period_end,
                -- stale whatever changed: the period ending at as_of, rows of other
                -- settings (or of a table stored before it had them), ends outside the
                -- window or not among its period ends
                (
                    period_end = {{ as_of() }}
                    {%- if not missing_columns %}
                    or (
                        select probe.settings_key from {{ this }} as probe
                        where probe.{{ column }} = stored_ends.period_end
                        {{ index_order('probe') }}
                        limit 1
                    ) is distinct from {{ period_settings_key() }}
                    {%- else %}
                    or true
                    {%- endif %}
                    or period_end < (select min({{ column }}) from {{ period_ends }})
                    or (
                        period_end < {{ as_of() }}
                        and period_end not in (select {{ column }} from {{ period_ends }})
                    )
                ) as is_outdated,
                -- stale because an order loaded or changed since comes before it, or
                -- was before it: an order moved later in time is seen in raw at its
                -- new time only, its old one is in the steps' redo log
                coalesce(period_end > least(
                    (
                        select min(ordered_at)
                        from {{ orders }}
                        where batch_id > {{ loaded_through }}
                    )
                    {%- if log is not none %},
                    (
                        select min(log.touched_at)
                        from {{ log }} as log
                        where log.loaded_through > {{ loaded_through }}
                    )
                    {%- endif %}
                ), false) as is_touched
            from stored_ends
            where period_end is not null
        {%- endset -%}
        {%- if records_seen %}
        {{ create_stage_history_seen(seen) }};
        {%- endif %}
        {%- if not redo_customers %}
        {%- if log is not none %}
        {{ create_order_step_redo_log(log) }};
        {%- endif %}
        delete from {{ this }}
        where {{ column }} = any(array(
            select period_end from ({{ judged_period_ends }}) as judged
            where is_outdated or is_touched
        ))
        {%- else -%}
        {%- set can_redo_customers = 'settings_key' in stored_columns and 'population_gap_days' in stored_columns %}
        {{ create_order_step_redo_log(log) }};
        create temporary table stale_period_ends on commit drop as
        with
        judged as (
            {{ judged_period_ends | indent(4) }}
        ),
        redo_log as (
            select
                {%- if can_redo_customers %}
                coalesce((
                    select
                        log.since_loaded_through = {{ loaded_through }}
                        and log.loaded_through = (
                            select coalesce(max(loaded_through), 0) from {{ order_steps }}
                        )
                    from {{ log }} as log
                    limit 1
                ), false)
                {%- else %}
                false
                {%- endif %} as is_usable
        ),
        -- only a period end of this run's window can be redone in part (the body
        -- computes those); a touched one after as_of (kept during a backfill)
        -- is dropped whole, as without a log
        judged_with_log as (
            select
                judged.*,
                redo_log.is_usable
                and judged.period_end in (select {{ column }} from {{ period_ends }}) as can_redo
            from judged
            cross join redo_log
        ),
        decided as (
            select
                period_end,
                is_outdated or (is_touched and not can_redo) as is_whole,
                can_redo
            from judged_with_log
        )
        select
            period_end,
            is_whole,
            not is_whole and can_redo and exists (
                select from {{ log }} as log
                where log.touched_at < period_end
            ) as is_partial
        from decided;
        {%- if can_redo_customers %}
        update stale_period_ends
        set is_whole = true
        from (
            select partial.period_end
            from stale_period_ends as partial
            left join ({{ population_first_gaps(
                '(select period_end as period_key, period_end as period_end_at from stale_period_ends
                  where is_partial and not is_whole)',
                order_steps
            ) }}) as now
                on now.period_key = partial.period_end
            where partial.is_partial
                and not partial.is_whole
                and now.median_first_gap_days is distinct from (
                    select probe.population_gap_days from {{ this }} as probe
                    where probe.{{ column }} = partial.period_end
                    {{ index_order('probe') }}
                    limit 1
                )
        ) as moved
        where stale_period_ends.period_end = moved.period_end;
        {%- endif %}
        {#- one delete per stale period end, with the end as a constant: the planner
            plans it with that end's share of the rows (at 10M orders one week end of
            13 was still read by a scan, 1.6 s), and a week with no stale end deletes
            nothing at once. A single `= any(array(select ...))` over the
            temporary table was planned as a scan of every stored row, even with no
            stale end (the weekly history at 10M orders: 19.5M rows, 1.4-1.7 s a
            week, most weeks for nothing) -#}
        do $stale_ends$
        declare
            stale_end stale_period_ends.period_end%type;
        begin
            for stale_end in select period_end from stale_period_ends where is_whole loop
                delete from {{ this }} where {{ column }} = stale_end;
            end loop;
        end
        $stale_ends$;
        create temporary table stage_history_redo on commit drop as
        select
            stale.period_end as period_end_at,
            log.customer_id
        from stale_period_ends as stale
        inner join {{ log }} as log
            on log.touched_at < stale.period_end
        where stale.is_partial
            and not stale.is_whole;
        analyze stage_history_redo;
        delete from {{ this }} as stored
        using stage_history_redo as redo
        where stored.{{ column }} = redo.period_end_at
            and stored.customer_id = redo.customer_id
        {%- endif %}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}


{#-
    `order by` the columns of the model's unique index, which leads with the period
    end, for a `limit 1` probe of one period end: the planner then reads the probe
    row off the index. Without it, it chose a sequential scan that stops at the
    first matching row, cheap while every page held rows of every period end, but
    a history written period end by period end (macros/stage_history.sql) keeps an
    old end's rows behind all the others': at 10M orders the twelve probes of the
    weekly history read 8M rows each on average, 10.3 s of a 27 s incremental run.
-#}
{% macro index_order(alias) -%}
    {%- set unique_indexes = (config.get('indexes') or []) | selectattr('unique') | list -%}
    {%- if unique_indexes -%}
        order by {% for column in unique_indexes[0]['columns'] -%}
            {{ alias }}.{{ column }}{{ ', ' if not loop.last }}
        {%- endfor %}
    {%- endif -%}
{%- endmacro %}
