{#
    on-run-start: analytics.project_settings, a project's reporting time zone and monthly budget
    (docs/contract.md, section 9), created when missing and never overwritten, so that the proxy or
    an operator can fill it. A project without a row reports in UTC and has no budget.
#}
{% macro create_project_settings() -%}{{ return(adapter.dispatch('create_project_settings', 'watchllm_analytics')()) }}{%- endmacro %}
{% macro default__create_project_settings() -%}
    {%- if execute -%}
        {%- set schema = generate_schema_name(env_var('WATCHLLM_ANALYTICS_SCHEMA', 'analytics'), none) -%}
        create schema if not exists {{ adapter.quote(schema) }};
        create table if not exists {{ adapter.quote(schema) }}.project_settings (
            project_id uuid primary key,
            time_zone text not null default 'UTC',
            monthly_budget_usd numeric check (monthly_budget_usd > 0),
            updated_at timestamptz not null default now()
        );
        alter table {{ adapter.quote(schema) }}.project_settings enable row level security
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
