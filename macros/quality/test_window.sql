{#
    The slice of history the data tests of a run read. A scheduled build's tests see only the
    hours it rebuilt (`lookback_hours` before the newest logged hour on), a range rebuild's tests
    its range, and the deep check (`--vars '{test_window: all}'`, the tests tagged deep_check) all
    of history. So the hourly path costs what the new data costs, and nothing is left unchecked.
#}

{# True when this run's tests read all of history (the deep check). #}
{% macro tests_read_all_history() -%}
    {%- set window = var('test_window', 'scheduled') | string | trim -%}
    {%- if window not in ('scheduled', 'all') -%}
        {{ exceptions.raise_compiler_error("var 'test_window' must be 'scheduled' or 'all', got: " ~ window) }}
    {%- endif -%}
    {{ return(window == 'all' or not keeps_test_windows()) }}
{%- endmacro %}

{# Whether this engine keeps the test-window table (Postgres, Spark); elsewhere every test reads all of history. #}
{% macro keeps_test_windows() -%}{{ return(adapter.dispatch('keeps_test_windows', 'watchllm_analytics')()) }}{%- endmacro %}
{% macro default__keeps_test_windows() -%}{{ return(false) }}{%- endmacro %}
{% macro postgres__keeps_test_windows() -%}{{ return(true) }}{%- endmacro %}
{% macro spark__keeps_test_windows() -%}{{ return(true) }}{%- endmacro %}

{#
    The bookkeeping table `watchllm_test_window`: per producer (int_usage_hourly_by_model), the first
    hour it replaced and the dbt invocation that did it. A first build (the producer created from
    scratch) records '-infinity': its tests read everything.
#}
{% macro test_window_relation() -%}
    {%- set schema = generate_schema_name(env_var('WATCHLLM_ANALYTICS_SCHEMA', 'analytics'), none) -%}
    {{ return(api.Relation.create(database=(target.database if target.database is defined else none), schema=schema, identifier='watchllm_test_window')) }}
{%- endmacro %}

{# on-run-start: the table, and '-infinity' for a producer that this build creates from scratch. #}
{% macro create_test_window() -%}{{ return(adapter.dispatch('create_test_window', 'watchllm_analytics')()) }}{%- endmacro %}
{% macro default__create_test_window() -%}select 1{%- endmacro %}
{% macro postgres__create_test_window() -%}
    {%- if execute -%}
        {%- set relation = test_window_relation() -%}
        create table if not exists {{ relation }} (
            producer text primary key,
            first_hour timestamptz,
            invocation_id text not null
        );
        alter table {{ relation }} enable row level security;
        insert into {{ relation }} (producer, first_hour, invocation_id)
        select 'int_usage_hourly_by_model', '-infinity', '{{ invocation_id }}'
        where
            to_regclass(quote_ident('{{ relation.schema }}') || '.int_usage_hourly_by_model') is null
            or not exists (select 1 from {{ relation }} where producer = 'int_usage_hourly_by_model')
        on conflict (producer) do update set first_hour = excluded.first_hour, invocation_id = excluded.invocation_id
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{# Spark: the same table in Parquet, one row, rewritten whole by the producer's pre-hook. #}
{% macro spark__create_test_window() -%}
    {%- if execute -%}
        {%- set relation = test_window_relation() -%}
        {%- do run_query('create database if not exists ' ~ relation.schema) -%}
        create table if not exists {{ relation }} (
            producer string,
            first_hour timestamp,
            invocation_id string
        ) using parquet
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#
    Spark producer pre-hook (insert_overwrite has no bucket_replace to call record_test_window):
    the first instant this run's batch replaces, computed as window_start does before the batch is
    read, or 1900-01-01 for a first build (its tests read everything). A range rebuild's tests use
    its range and record nothing.
#}
{% macro record_batch_test_window(own_column, grain) -%}
    {{ return(adapter.dispatch('record_batch_test_window', 'watchllm_analytics')(own_column, grain)) }}
{%- endmacro %}
{% macro default__record_batch_test_window(own_column, grain) -%}select 1{%- endmacro %}
{% macro spark__record_batch_test_window(own_column, grain) -%}
    {%- if not execute or is_range_rebuild() -%}
        {{ return('select 1') }}
    {%- endif -%}
    {%- set relation = test_window_relation() -%}
    {%- if is_incremental() -%}
        {%- set start_query -%}
            select unix_seconds({{ default__window_start(own_column, grain, replace_grain(grain)) }})
        {%- endset -%}
        {%- set start = run_query(start_query).columns[0].values()[0] | int -%}
    {%- else -%}
        {%- set start = -2208988800 -%}
    {%- endif -%}
    {%- set recorded_query -%}
        select unix_seconds(min(first_hour)) from {{ relation }}
        where producer = '{{ this.identifier }}' and invocation_id = '{{ invocation_id }}'
    {%- endset -%}
    {%- set recorded = run_query(recorded_query).columns[0].values()[0] -%}
    {%- if recorded is not none and recorded | int < start -%}{%- set start = recorded | int -%}{%- endif -%}
    insert overwrite table {{ relation }}
    select '{{ this.identifier }}', timestamp_seconds({{ start }}), '{{ invocation_id }}'
{%- endmacro %}

{# Producer side, called by bucket_replace in the producer's transaction: the first hour of its batch. #}
{% macro record_test_window(batch_relation, bucket_column) -%}
    {{ return(adapter.dispatch('record_test_window', 'watchllm_analytics')(batch_relation, bucket_column)) }}
{%- endmacro %}
{% macro default__record_test_window(batch_relation, bucket_column) -%}select 1{%- endmacro %}
{% macro postgres__record_test_window(batch_relation, bucket_column) -%}
    insert into {{ test_window_relation() }} (producer, first_hour, invocation_id)
    values (
        '{{ this.identifier }}',
        (select min({{ bucket_column }}) from {{ batch_relation }}),
        '{{ invocation_id }}'
    )
    on conflict (producer) do update set
        -- a first build of this invocation keeps '-infinity'
        first_hour = case
            when {{ test_window_relation() }}.invocation_id = excluded.invocation_id
                then least({{ test_window_relation() }}.first_hour, excluded.first_hour)
            else excluded.first_hour
        end,
        invocation_id = excluded.invocation_id
{%- endmacro %}

{#
    The first instant the tests of this run check: the first hour the producer replaced in this dbt
    invocation, and never later than `lookback_hours` before the newest logged hour (`logged` is the
    usage_logs source; its newest row no later than the future tolerance, an index lookup on
    created_at). A range rebuild checks its range.
#}
{% macro test_window_start(logged) -%}
    {{ return(adapter.dispatch('test_window_start', 'watchllm_analytics')(logged)) }}
{%- endmacro %}

{% macro default__test_window_start(logged) -%}
    {%- if is_range_rebuild() -%}
        {{ bucket_floor(utc_literal(rebuild_bound('start')), 'hour') }}
    {%- else -%}
        least(
            (
                select first_hour from {{ test_window_relation() }}
                where producer = 'int_usage_hourly_by_model' and invocation_id = '{{ invocation_id }}'
            ),
            (
                select {{ bucket_floor('max(created_at) - ' ~ hours(var('lookback_hours')), 'hour') }}
                from {{ logged }}
                where created_at <= {{ dbt.current_timestamp() }} + {{ minutes(var('future_tolerance_minutes')) }}
            )
        )
    {%- endif -%}
{%- endmacro %}

{#
    Spark: the recorded first hour of this invocation, read before the test and written into it as
    a literal (the newest raw row would be a scan of every partition there). A test run without
    the producer (plain `dbt test`) falls back to the Postgres rule.
#}
{% macro spark__test_window_start(logged) -%}
    {%- if execute and not is_range_rebuild() -%}
        {%- set recorded_query -%}
            select unix_seconds(min(first_hour)) from {{ test_window_relation() }}
            where producer = 'int_usage_hourly_by_model' and invocation_id = '{{ invocation_id }}'
        {%- endset -%}
        {%- set recorded = run_query(recorded_query).columns[0].values()[0] -%}
        {%- if recorded is not none -%}
            {{ return('timestamp_seconds(' ~ (recorded | int) ~ ')') }}
        {%- endif -%}
    {%- endif -%}
    {{ return(default__test_window_start(logged)) }}
{%- endmacro %}

{#
    SQL predicate: `time_column` (a timestamptz; with grain 'day' or 'month' a UTC date, compared with
    the window widened to whole days or months) lies in this run's test window. `true` for the deep
    check. The project's generic tests (tests/generic/) and singular tests apply it.
#}
{% macro in_test_window(time_column, logged, grain='hour') -%}
    {%- if tests_read_all_history() -%}
        true
    {%- else -%}
        {%- set start = test_window_start(logged) -%}
        {%- set end = bucket_ceil(utc_literal(rebuild_bound('end')), 'hour') if is_range_rebuild() else none -%}
        {%- if grain in ('day', 'month') -%}
            {%- set start = utc_date(bucket_floor(start, grain)) -%}
            {%- set end = utc_date(bucket_ceil(end, grain)) if end is not none else none -%}
        {%- endif -%}
        {{ time_column }} >= {{ start }}
        {%- if end is not none %}
        and {{ time_column }} < {{ end }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
