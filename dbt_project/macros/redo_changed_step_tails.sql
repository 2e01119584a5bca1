{#-
    Pre-hook of int_customer_order_steps: find where each customer's stored
    steps stop being right, delete them from there on, and leave the customers
    and those points in the temporary table `order_steps_to_redo` (dropped at
    commit) for the model's body, which computes exactly the deleted steps.

    A customer is touched by every order of theirs that raw received or saw
    change since the table was last brought up to date (`loaded_through`, the
    highest load batch its runs had seen), as raw has it now, and by every
    stored step of such an order (an order moved to another customer, no longer
    completed, or moved in time, invalidates the steps from where it was). Their
    steps from the first touched one on are redone, and so is the step just
    before it, whose next order time can change. The steps before that depend
    on earlier orders only and are kept: a week redoes the last step or two of
    the customers who ordered, not their whole history.

    A table stored without one of the columns this version writes (`columns`;
    on_schema_change adds them empty) is emptied first, and so recomputed whole
    (with nothing stored, every order counts as changed).

    The run also leaves, durably, the redo log `<steps>__redone` (unlogged,
    derived state): each touched customer with the earliest point of their
    history the run touched (`touched_at`), the highest load batch the stored
    steps had seen before the run (`since_loaded_through`) and the one the
    run's steps record (`loaded_through`). It holds the latest run only. The
    stage histories read it (macros/delete_stale_period_ends.sql): a period
    end at or before a customer's touched_at cannot change for them, so a late
    change makes a history recompute those customers at older period ends
    instead of every customer. A customer left with no steps at all (every
    order refunded, or moved away) is in the log too, which is how the
    histories drop their stale rows. A full build leaves the log empty, and
    an empty or outdated log makes the histories recompute whole period ends.
-#}
{% macro redo_changed_step_tails(orders, columns) -%}
    {%- set log = order_step_redo_log(this) -%}
    {%- if is_incremental() -%}
        {%- set stored_columns = adapter.get_columns_in_relation(this) | map(attribute='name') | list if execute else [] -%}
        {%- set missing = columns | reject('in', stored_columns) | list -%}
        {%- set emptied = missing and execute -%}
        {%- if emptied -%}
        delete from {{ this }};
        {% endif -%}
        create temporary table order_steps_to_redo on commit drop as
        with
        changed as (
            select customer_id, order_id, ordered_at
            from {{ orders }}
            {%- if not emptied %}
            where batch_id > (select coalesce(max(loaded_through), 0) from {{ this }})
            {%- endif %}
        ),
        touched as (
            select customer_id, ordered_at from changed
            union all
            select stored.customer_id, stored.ordered_at
            from {{ this }} as stored
            inner join changed
                on stored.order_id = changed.order_id
        ),
        first_touched as (
            select customer_id, min(ordered_at) as touched_at
            from touched
            group by 1
        )
        select
            first_touched.customer_id,
            first_touched.touched_at,
            coalesce(
                max(stored.ordered_at) filter (where stored.ordered_at < first_touched.touched_at),
                first_touched.touched_at
            ) as redo_from
        from first_touched
        left join {{ this }} as stored
            on stored.customer_id = first_touched.customer_id
        group by first_touched.customer_id, first_touched.touched_at;
        analyze order_steps_to_redo;
        {{ create_order_step_redo_log(log) }};
        delete from {{ log }};
        insert into {{ log }} (customer_id, touched_at, since_loaded_through, loaded_through)
        select
            customer_id,
            touched_at,
            (select coalesce(max(loaded_through), 0) from {{ this }}),
            (select coalesce(max(batch_id), 0) from {{ orders }})
        from order_steps_to_redo;
        delete from {{ this }} as stored
        using order_steps_to_redo as redo
        where stored.customer_id = redo.customer_id
            and stored.ordered_at >= redo.redo_from
    {%- else -%}
        {#- a full build rewrites every step: an empty log says "no partial redo" -#}
        drop table if exists {{ log }};
        {{ create_order_step_redo_log(log) }}
    {%- endif -%}
{%- endmacro %}

