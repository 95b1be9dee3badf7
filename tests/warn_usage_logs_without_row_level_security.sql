{#
    Warning: the proxy's usage_logs has row level security off while Supabase's API roles (anon,
    authenticated) exist. get_dashboard_stats reads the newest hours from usage_logs with the
    caller's rights, and so does anyone with those roles through the API: without a policy on
    usage_logs every signed-in user can read every project's requests (docs/security.md). A catalog
    lookup: it costs the same whatever the size of the table.
#}
{{ config(severity='warn', enabled=(target.type == 'postgres')) }}

{%- set logged = source('proxy', 'usage_logs') %}

select
    namespaces.nspname as schema_name,
    tables.relname as table_name,
    string_agg(roles.rolname, ', ' order by roles.rolname) as api_roles
from pg_catalog.pg_class as tables
inner join pg_catalog.pg_namespace as namespaces on tables.relnamespace = namespaces.oid
cross join pg_catalog.pg_roles as roles
where
    namespaces.nspname = '{{ logged.schema }}'
    and tables.relname = '{{ logged.identifier }}'
    and not tables.relrowsecurity
    and roles.rolname in ('anon', 'authenticated')
group by namespaces.nspname, tables.relname
