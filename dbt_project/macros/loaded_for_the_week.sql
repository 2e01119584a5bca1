{#-
    The staging tests that read every row of a raw table (orders, tickets) take
    `where: "__loaded_for_the_week__"`: only the rows of the load batches whose
    ingest interval ends after this build's week start, that is the batches of
    this week's ingest runs (and of later ones, when an older week is rebuilt).
    Every batch passed the ingest gate (expectations/raw_<entity>.json) before
    it was published, and the rows of earlier batches were tested by the build
    of their own week: testing all of raw each week made these tests the one
    cost of the build that grew with the whole history (at 10M orders, 5.7 s of
    an incremental week, 1.3 s this way). Keyed to as_of, never to now(): a re-run of a week
    tests the same batches. `--vars '{staging_tests_scope: all}'` tests every
    row.

    A placeholder, replaced here when the test runs, because dbt's parser does
    not call a project's macros inside a generic test's config. Batch ids are
    unique across entities (ops.load_batches, created by the loader's DDL in
    retention_pipeline/ddl.py, so not a dbt source).
-#}
{% macro loaded_for_the_week() -%}
    {%- if var('staging_tests_scope') == 'all' -%}
        true
    {%- elif var('staging_tests_scope') == 'week' -%}
        {#- the ids as literals, read first: with a subquery instead the planner
            cannot tell a week's few batches from the history's one and scans
            all of raw (1.5 s at 10M orders) where the _batch_id index finds
            the week's rows -#}
        {%- set batch_ids = '{}' -%}
        {%- if execute -%}
            {%- set found = run_query(
                "select coalesce(array_agg(batch_id order by batch_id), '{}')::text from ops.load_batches "
                ~ "where interval_end > " ~ shift_in_business_tz(as_of(), "interval '-7 days'")
            ) -%}
            {%- set batch_ids = found.columns[0].values()[0] -%}
        {%- endif -%}
        batch_id = any('{{ batch_ids }}'::bigint[])
    {%- else -%}
        {{ exceptions.raise_compiler_error(
            "The var 'staging_tests_scope' is 'week' or 'all', not '" ~ var('staging_tests_scope') ~ "'."
        ) }}
    {%- endif -%}
{%- endmacro %}

{#- dbt's own get_where_subquery, with the placeholder above replaced -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- set where = where | replace('__loaded_for_the_week__', loaded_for_the_week()) -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
