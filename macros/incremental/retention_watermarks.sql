{#
    Retention watermarks (docs/production.md, "Retention"): `watchllm_retention_watermarks` holds, per
    table that `watchllm-analytics retention` deletes from, the first instant whose rows are all
    still there. Retention deletes whole UTC days, oldest first, and moves the watermark past a day
    in the same transaction that deletes it, so every reader sees a day whole or gone, and knows
    which.

    Every producer respects the watermark of what it reads: it never rebuilds a bucket that starts
    before it (incremental_time_filter's `retained_from`). A bucket of a day retention touched is
    never replaced by a partial one; it keeps the aggregate it had, which is what "aggregates outlive
    raw logs" promises, even when the proxy deletes raw rows of a day in several goes.
#}

{% macro retention_watermarks_relation() -%}
    {%- set schema = generate_schema_name(env_var('WATCHLLM_ANALYTICS_SCHEMA', 'analytics'), none) -%}
    {{ return(api.Relation.create(database=(target.database if target.database is defined else none), schema=schema, identifier='watchllm_retention_watermarks')) }}
{%- endmacro %}

{# on-run-start: the table (no tenant data: readable by every tenant role). orchestration/core/retention.py creates the same. #}
{% macro create_retention_watermarks() -%}{{ return(adapter.dispatch('create_retention_watermarks', 'watchllm_analytics')()) }}{%- endmacro %}
{% macro default__create_retention_watermarks() -%}select 1{%- endmacro %}
{% macro postgres__create_retention_watermarks() -%}
    {%- if execute -%}
        {%- set relation = retention_watermarks_relation() -%}
        create schema if not exists {{ relation.schema }};
        create table if not exists {{ relation }} (
            table_name text primary key,
            retained_from timestamptz not null,
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
        from {{ retention_watermarks_relation() }}
        where table_name = '{{ table_name }}'
    )
{%- endmacro %}
