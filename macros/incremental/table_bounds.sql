{#
    Per table, the bounds the builds and the dashboard read without scanning it (`watchllm_table_bounds`,
    no tenant data, readable by the tenant roles):

    - `retained_from`: the first instant whose rows `watchllm-analytics retention` has not touched.
      Retention deletes whole UTC days, oldest first, and moves this past a day in the same
      transaction that deletes it, so every reader sees a day whole or gone, and knows which. Every
      producer respects the watermark of what it reads: it never rebuilds a bucket that starts
      before it (incremental_time_filter's `retained`), so a bucket of a day retention touched keeps
      the aggregate it had ("aggregates outlive raw logs").
    - `newest_bucket`: the newest bucket a producer has built (int_usage_hourly_by_model records its
      newest hour after every run), where the dashboard's open tail starts from: a lookup instead of
      a max() over a table that row level security would filter row by row.
#}

{% macro table_bounds_relation() -%}
    {%- set schema = generate_schema_name(env_var('WATCHLLM_ANALYTICS_SCHEMA', 'analytics'), none) -%}
    {{ return(api.Relation.create(database=(target.database if target.database is defined else none), schema=schema, identifier='watchllm_table_bounds')) }}
{%- endmacro %}

{# on-run-start: the table, readable by every tenant role (no tenant data). orchestration/core/retention.py creates the same. #}
{% macro create_table_bounds() -%}{{ return(adapter.dispatch('create_table_bounds', 'watchllm_analytics')()) }}{%- endmacro %}
{% macro default__create_table_bounds() -%}select 1{%- endmacro %}
{% macro postgres__create_table_bounds() -%}
    {%- if execute -%}
        {%- set relation = table_bounds_relation() -%}
        create schema if not exists {{ relation.schema }};
        create table if not exists {{ relation }} (
            table_name text primary key,
            retained_from timestamptz,
            newest_bucket timestamptz,
            updated_at timestamptz not null default now()
        );
        -- the dashboard function reads it with the caller's rights; it holds no tenant data
        {{ secure_shared_table(relation) }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#
    The first instant of `table_name` (a relation retention trims: usage_logs, or an aggregate table)
    whose rows retention has not touched, as SQL; 1900-01-01 when it never ran. Engines without
    retention (Spark) have no watermark.
#}
{% macro retained_from(table_name) -%}{{ return(adapter.dispatch('retained_from', 'watchllm_analytics')(table_name)) }}{%- endmacro %}
{% macro default__retained_from(table_name) -%}{{ utc_literal('1900-01-01') }}{%- endmacro %}
{% macro postgres__retained_from(table_name) -%}
    (
        select coalesce(max(retained_from), {{ utc_literal('1900-01-01') }})
        from {{ table_bounds_relation() }}
        where table_name = '{{ table_name }}'
    )
{%- endmacro %}

{# Post-hook of a producer: its newest bucket, read from its own table (an index lookup, as the owner). #}
{% macro record_newest_bucket(bucket_column) -%}{{ return(adapter.dispatch('record_newest_bucket', 'watchllm_analytics')(bucket_column)) }}{%- endmacro %}
{% macro default__record_newest_bucket(bucket_column) -%}select 1{%- endmacro %}
{% macro postgres__record_newest_bucket(bucket_column) -%}
    insert into {{ table_bounds_relation() }} as bounds (table_name, newest_bucket)
    select '{{ this.identifier }}', max({{ bucket_column }}) from {{ this }}
    on conflict (table_name) do update set newest_bucket = excluded.newest_bucket, updated_at = now()
{%- endmacro %}

{# SQL: the newest bucket `table_name` recorded (NULL before its first build). #}
{% macro newest_bucket(table_name) -%}
    (select newest_bucket from {{ table_bounds_relation() }} where table_name = '{{ table_name }}')
{%- endmacro %}
