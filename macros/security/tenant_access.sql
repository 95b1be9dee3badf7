{#
    Tenant isolation for the dashboard path (Supabase: PostgREST calls get_dashboard_stats with the
    caller's role). Applied by post-hooks inside each model's own transaction, so a table that dbt
    creates or re-creates is never visible without its row level security, policy and grants.

    vars (dbt_project.yml):
      tenant_policies              auto (default): policies and grants only where auth.uid()
                                   exists (a Supabase database); on: always; off: never. RLS is
                                   enabled either way, so without a policy end users read nothing
      tenant_roles                 roles of signed-in end users, default ['authenticated'];
                                   roles that do not exist are skipped (a plain Postgres has none)
      tenant_membership_predicate  SQL over the row's `project_id` that is true when the caller may
                                   see that project; default: the caller (auth.uid()) owns the
                                   project or is one of its members
    The predicate is operator configuration (dbt_project.yml or --vars), never end-user input.
    The table owner (the role dbt builds with) is not subject to RLS, so builds, tests and
    operator queries see every row.
#}

{# Roles from var tenant_roles that exist in this cluster, validated as identifiers. #}
{% macro existing_tenant_roles() -%}
    {%- set wanted = var('tenant_roles', ['authenticated']) -%}
    {%- if wanted is string -%}{%- set wanted = [wanted] -%}{%- endif -%}
    {%- for role in wanted -%}
        {%- if not modules.re.match('^[a-z_][a-z0-9_]*$', role) -%}
            {{ exceptions.raise_compiler_error("var 'tenant_roles' must list lowercase role names, got: " ~ role) }}
        {%- endif -%}
    {%- endfor -%}
    {%- if not execute or wanted | length == 0 -%}{{ return([]) }}{%- endif -%}
    {%- set mode = var('tenant_policies', 'auto') -%}
    {%- if mode == 'off' -%}{{ return([]) }}{%- endif -%}
    {%- if mode == 'auto' and run_query("select to_regprocedure('auth.uid()') is not null")[0][0] is false -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set found = run_query("select rolname from pg_roles where rolname in ('" ~ wanted | join("', '") ~ "') order by 1") -%}
    {{ return(found.columns[0].values() | list) }}
{%- endmacro %}

{% macro tenant_membership_predicate() -%}
    {{ var('tenant_membership_predicate',
        "project_id in (select id from public.projects where user_id = auth.uid()"
        ~ " union all select project_id from public.project_members where user_id = auth.uid())") }}
{%- endmacro %}

{# Post-hook for a table with a project_id column: RLS on, one read policy for tenant roles. #}
{% macro secure_tenant_table() -%}{{ return(adapter.dispatch('secure_tenant_table', 'watchllm_analytics')()) }}{%- endmacro %}
{% macro default__secure_tenant_table() -%}select 1{%- endmacro %}
{% macro postgres__secure_tenant_table() -%}
    {%- set roles = existing_tenant_roles() -%}
    alter table {{ this }} enable row level security;
    revoke all on {{ this }} from public;
    drop policy if exists tenant_member_read on {{ this }};
    {%- if roles %}
    create policy tenant_member_read on {{ this }} as permissive for select
        to {{ roles | join(', ') }}
        using ({{ tenant_membership_predicate() }});
    grant select on {{ this }} to {{ roles | join(', ') }};
    {%- endif %}
    {{ revoke_from_anon('table') }}
{%- endmacro %}

{#
    Post-hook for a table every tenant may read in full (the price list and the models with meta
    read_by_every_tenant; with `relation`, the retention watermarks, which the dashboard reads):
    RLS on, read-all policy.
#}
{% macro secure_shared_table(relation=none) -%}{{ return(adapter.dispatch('secure_shared_table', 'watchllm_analytics')(relation)) }}{%- endmacro %}
{% macro default__secure_shared_table(relation=none) -%}select 1{%- endmacro %}
{% macro postgres__secure_shared_table(relation=none) -%}
    {%- set relation = relation or this -%}
    {%- set roles = existing_tenant_roles() -%}
    alter table {{ relation }} enable row level security;
    revoke all on {{ relation }} from public;
    drop policy if exists tenant_read_all on {{ relation }};
    {%- if roles %}
    create policy tenant_read_all on {{ relation }} as permissive for select to {{ roles | join(', ') }} using (true);
    grant select on {{ relation }} to {{ roles | join(', ') }};
    {%- endif %}
    {{ revoke_from_anon('table', relation=relation) }}
{%- endmacro %}

{#
    Post-hook for a view the dashboard function reads: views are security_invoker (see
    materializations/view.sql), so the tables under them apply their own RLS to the caller.
#}
{% macro secure_tenant_view() -%}{{ return(adapter.dispatch('secure_tenant_view', 'watchllm_analytics')()) }}{%- endmacro %}
{% macro default__secure_tenant_view() -%}select 1{%- endmacro %}
{% macro postgres__secure_tenant_view() -%}
    {%- set roles = existing_tenant_roles() -%}
    revoke all on {{ this }} from public;
    {%- if roles %}
    grant select on {{ this }} to {{ roles | join(', ') }};
    {%- endif %}
    {{ revoke_from_anon('table') }}
{%- endmacro %}

{# Post-hook for the dashboard function: only tenant roles may execute it. #}
{% macro secure_dashboard_function(argument_types) -%}{{ return(adapter.dispatch('secure_dashboard_function', 'watchllm_analytics')(argument_types)) }}{%- endmacro %}
{% macro default__secure_dashboard_function(argument_types) -%}select 1{%- endmacro %}
{% macro postgres__secure_dashboard_function(argument_types) -%}
    {%- set roles = existing_tenant_roles() -%}
    {%- set function = this.schema ~ '.' ~ this.identifier ~ '(' ~ argument_types ~ ')' -%}
    revoke all on function {{ function }} from public;
    {%- if roles %}
    grant execute on function {{ function }} to {{ roles | join(', ') }};
    {%- endif %}
    {{ revoke_from_anon('function', function) }}
{%- endmacro %}

{#
    Supabase's default privileges grant every new object in `public` to anon: take them back.
    (A no-op where the role does not exist.)
#}
{% macro revoke_from_anon(kind, function=none, relation=none) -%}
    {%- if execute and run_query("select 1 from pg_roles where rolname = 'anon'") | length > 0 -%}
        {%- if kind == 'function' -%}
    revoke all on function {{ function }} from anon;
        {%- else -%}
    revoke all on {{ relation or this }} from anon;
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{# on-run-end: tenant roles may look up objects in the analytics schema (RLS decides the rows). #}
{% macro grant_schema_usage_to_tenants() -%}
    {{ return(adapter.dispatch('grant_schema_usage_to_tenants', 'watchllm_analytics')()) }}
{%- endmacro %}
{% macro default__grant_schema_usage_to_tenants() -%}select 1{%- endmacro %}
{% macro postgres__grant_schema_usage_to_tenants() -%}
    {%- set roles = existing_tenant_roles() if execute else [] -%}
    {%- if roles -%}
    grant usage on schema {{ target.schema }} to {{ roles | join(', ') }}
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{# The post-hook every model gets (dbt_project.yml), by what the model materialises as. #}
{% macro secure_relation() -%}
    {%- set materialized = config.get('materialized') -%}
    {%- if materialized == 'view' -%}
        {{ return(secure_tenant_view()) }}
    {%- elif materialized == 'sql_function' -%}
        {{ return(secure_dashboard_function(config.require('argument_types'))) }}
    {%- elif materialized == 'seed' or (config.get('meta') or {}).get('read_by_every_tenant') -%}
        {{ return(secure_shared_table()) }}
    {%- else -%}
        {{ return(secure_tenant_table()) }}
    {%- endif -%}
{%- endmacro %}
