{#
    on-run-start: analytics.project_settings, a project's reporting time zone, monthly budget, report
    and alert recipients and alert threshold overrides (docs/contract.md, sections 9 and 12), and
    analytics.key_budgets, monthly budgets per API key (section 15), created
    when missing and never overwritten, so that the proxy or an operator can fill it. Columns added
    later are added to an existing table. A project without a row reports in UTC, has no budget and
    uses the WATCHLLM_* alert thresholds; a NULL override means the same.
#}
{% macro create_project_settings() -%}{{ return(adapter.dispatch('create_project_settings', 'watchllm_analytics')()) }}{%- endmacro %}
{% macro default__create_project_settings() -%}select 1{%- endmacro %}
{% macro postgres__create_project_settings() -%}
    {%- if execute -%}
        {%- set schema = generate_schema_name(env_var('WATCHLLM_ANALYTICS_SCHEMA', 'analytics'), none) -%}
        create schema if not exists {{ adapter.quote(schema) }};
        create table if not exists {{ adapter.quote(schema) }}.project_settings (
            project_id uuid primary key,
            time_zone text not null default 'UTC',
            monthly_budget_usd numeric check (monthly_budget_usd > 0),
            updated_at timestamptz not null default now()
        );
        -- only when a column is missing: an alter takes an exclusive lock, on every hourly build otherwise
        do $settings$ begin
        if (select count(*) from information_schema.columns
            where table_schema = '{{ schema | replace("'", "''") }}' and table_name = 'project_settings'
              and column_name in ('monthly_budget_usd', 'report_email_to', 'alert_email_to', 'hit_rate_drop_points',
                                  'cost_spike_ratio', 'cost_spike_min_usd', 'latency_p95_ratio', 'updated_at',
                                  'error_rate_spike_ratio', 'error_rate_spike_min_points')) < 10 then
        alter table {{ adapter.quote(schema) }}.project_settings
            add column if not exists monthly_budget_usd numeric check (monthly_budget_usd > 0),
            add column if not exists report_email_to text,
            add column if not exists alert_email_to text,
            add column if not exists hit_rate_drop_points numeric check (hit_rate_drop_points >= 0),
            add column if not exists cost_spike_ratio numeric check (cost_spike_ratio >= 0),
            add column if not exists cost_spike_min_usd numeric check (cost_spike_min_usd >= 0),
            add column if not exists latency_p95_ratio numeric check (latency_p95_ratio >= 0),
            add column if not exists updated_at timestamptz not null default now(),
            add column if not exists error_rate_spike_ratio numeric check (error_rate_spike_ratio >= 0),
            add column if not exists error_rate_spike_min_points numeric check (error_rate_spike_min_points >= 0);
        end if;
        end $settings$;
        -- recipients are plain addresses, comma-separated: one that could add a mail header is refused
        -- where it is set (NOT VALID: a value stored before is not judged here, but where it is used)
        do $recipients$ begin
        if (select count(*) from pg_constraint
            where conrelid = '{{ adapter.quote(schema) }}.project_settings'::regclass
              and conname in ('project_settings_alert_email_to_addresses', 'project_settings_report_email_to_addresses')) < 2 then
        alter table {{ adapter.quote(schema) }}.project_settings
            drop constraint if exists project_settings_alert_email_to_addresses,
            drop constraint if exists project_settings_report_email_to_addresses,
            add constraint project_settings_alert_email_to_addresses
                check (alert_email_to ~ '{{ email_list_pattern() }}') not valid,
            add constraint project_settings_report_email_to_addresses
                check (report_email_to ~ '{{ email_list_pattern() }}') not valid;
        end if;
        end $recipients$;
        alter table {{ adapter.quote(schema) }}.project_settings enable row level security;
        -- monthly budgets per API key (docs/contract.md, section 15): the key_budget alert
        create table if not exists {{ adapter.quote(schema) }}.key_budgets (
            project_id uuid not null,
            api_key_id text not null,
            monthly_budget_usd numeric not null check (monthly_budget_usd > 0),
            updated_at timestamptz not null default now(),
            primary key (project_id, api_key_id)
        );
        alter table {{ adapter.quote(schema) }}.key_budgets enable row level security
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#
    A comma-separated list of plain email addresses (blanks allowed), as a POSIX regex in a SQL string:
    the rule orchestration/core/delivery.py applies where the addresses are used.
#}
{% macro email_list_pattern() -%}
    {%- set address = "[A-Za-z0-9.!#$%&''*+/=?^_`{|}~-]+@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\\.[A-Za-z0-9-]+)*" -%}
    ^[ \t]*({{ address }})?([ \t]*,[ \t]*({{ address }})?)*[ \t]*$
{%- endmacro %}
