{#-
    Pre-hook of int_customer_order_steps: find where each customer's stored
    steps stop being right, delete them from there on, and leave for the
    model's body, in temporary tables dropped at commit, the changed orders
    (`order_step_changes`), the touched customers' stored steps as they were
    before the delete (`order_steps_stored`) and each customer's redo point
    (`order_steps_to_redo`): the body computes exactly the deleted steps from
    those, without reading raw.

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
{% macro redo_changed_step_tails(orders, batches, columns) -%}
    {%- set log = order_step_redo_log(this) -%}
    {#- what the body reads of a stored step, and where it is (for the delete) -#}
    {%- set step_columns -%}
        stored.ctid as stored_ctid, stored.customer_id, stored.order_id, stored.ordered_at,
            stored.ordered_date, stored.net_amount, stored.first_order_at, stored.orders_count,
            stored.net_revenue, stored.gap_days
    {%- endset -%}
    {%- if is_incremental() -%}
        {%- set stored_columns = adapter.get_columns_in_relation(this) | map(attribute='name') | list if execute else [] -%}
        {%- set missing = columns | reject('in', stored_columns) | list -%}
        {%- set emptied = missing and execute -%}
        {%- if emptied -%}
        delete from {{ this }};
        {% endif -%}
        {#- the changed orders, as raw has them now: a table, analyzed, so
            the joins below hash these few rows, not the stored steps -#}
        create temporary table order_step_changes on commit drop as
        select customer_id, order_id, ordered_at, ordered_date, net_amount, is_completed
        from {{ orders }}
        {%- if not emptied %}
        where batch_id > (select coalesce(max(loaded_through), 0) from {{ this }})
        {%- endif %};
        analyze order_step_changes;
        {#- every stored step of the customers the changes touch, as it is
            before the delete below: the body continues each customer's kept
            steps from here instead of re-reading their orders from raw. One
            scan of the stored steps finds the steps of the customers whose
            orders changed and the stored steps of the changed orders
            themselves (an order moved to another customer was stored under
            one whose steps it invalidates); the touched customers follow from
            those (a scan for each took 3.0 and 2.6 s at 10M orders, this one
            2.9-3.1 s) -#}
        create temporary table order_steps_stored on commit drop as
        select
            {{ step_columns }}
        from {{ this }} as stored
        where stored.customer_id in (select changed.customer_id from order_step_changes as changed)
            or stored.order_id in (select changed.order_id from order_step_changes as changed);
        create temporary table order_step_customers on commit drop as
        select customer_id, min(ordered_at) as touched_at
        from (
            select customer_id, ordered_at from order_step_changes
            union all
            select stored.customer_id, stored.ordered_at
            from order_steps_stored as stored
            inner join order_step_changes as changed
                on stored.order_id = changed.order_id
        ) as touched
        group by 1;
        analyze order_step_customers;
        {#- the other steps of the customers touched only by an order that
            moved away from them (there are rarely any such customers, and a
            join with none reads no step) -#}
        insert into order_steps_stored
        select
            {{ step_columns }}
        from {{ this }} as stored
        inner join order_step_customers as touched
            on stored.customer_id = touched.customer_id
        where not exists (
                select from order_step_changes as changed
                where changed.customer_id = touched.customer_id
            )
            and stored.order_id not in (select changed.order_id from order_step_changes as changed);
        analyze order_steps_stored;
        create temporary table order_steps_to_redo on commit drop as
        select
            touched.customer_id,
            touched.touched_at,
            coalesce(
                max(stored.ordered_at) filter (where stored.ordered_at < touched.touched_at),
                touched.touched_at
            ) as redo_from
        from order_step_customers as touched
        left join order_steps_stored as stored
            on stored.customer_id = touched.customer_id
        group by touched.customer_id, touched.touched_at;
        analyze order_steps_to_redo;
        {{ create_order_step_redo_log(log) }};
        delete from {{ log }};
        insert into {{ log }} (customer_id, touched_at, since_loaded_through, loaded_through)
        select
            customer_id,
            touched_at,
            (select coalesce(max(loaded_through), 0) from {{ this }}),
            {{ highest_loaded_batch(batches) }}
        from order_steps_to_redo;
        {#- by the rows' physical addresses, read above in this transaction:
            a TID scan of the deleted rows instead of a scan of every step -#}
        delete from {{ this }}
        where ctid = any (array(
            select stored.stored_ctid
            from order_steps_stored as stored
            inner join order_steps_to_redo as redo
                on stored.customer_id = redo.customer_id
            where stored.ordered_at >= redo.redo_from
        ))
    {%- else -%}
        {#- a full build rewrites every step: an empty log says "no partial redo" -#}
        drop table if exists {{ log }};
        {{ create_order_step_redo_log(log) }}
    {%- endif -%}
{%- endmacro %}

