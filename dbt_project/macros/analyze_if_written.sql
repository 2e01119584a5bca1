{#-
    Post-hook: `analyze {{ this }}` when the run's transaction inserted,
    updated or deleted rows of it (pg_stat_xact_user_tables, this transaction's
    own counts), for a model that often writes nothing: the monthly stage
    history, in a week that crosses no month end and that no late change
    reaches. Its statistics are then still true, and the analyze (1.3 s at 10M
    orders, a sample of the whole table) is skipped. A table the counts do not
    cover (none found) is analyzed.
-#}
{% macro analyze_if_written() -%}
    do $analyze_if_written$
    begin
        if coalesce((
            select n_tup_ins + n_tup_upd + n_tup_del
            from pg_stat_xact_user_tables
            where relid = '{{ this }}'::regclass
        ), 1) > 0 then
            analyze {{ this }};
        end if;
    end
    $analyze_if_written$
{%- endmacro %}
