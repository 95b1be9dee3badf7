{#
    Views are replaced in place (`create or replace view`) instead of dbt's default rename-and-drop
    (which drops dependent views with CASCADE), so running one model never removes the views and
    the dashboard function built on top of it. Only when the column list changes in a way Postgres
    cannot replace (a column removed or renamed) is the old view dropped first.
    Views are security_invoker (PostgreSQL 15+): a caller reads through them with its own rights,
    so the row level security of the tables underneath applies (macros/security/tenant_access.sql).
#}
{% materialization view, adapter='postgres' %}
    {%- set target_relation = this.incorporate(type='view') -%}
    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set grant_config = config.get('grants') -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {%- if existing_relation is not none -%}
        {%- set old_names = adapter.get_columns_in_relation(existing_relation) | map(attribute='name') | list -%}
        {%- set new_names = get_column_schema_from_query(sql) | map(attribute='name') | list -%}
        {%- if not existing_relation.is_view or new_names[:old_names | length] != old_names -%}
            {{ drop_relation_if_exists(existing_relation) }}
        {%- endif -%}
    {%- endif -%}

    {% call statement('main') -%}
        create or replace view {{ target_relation }} with (security_invoker = true) as (
            {{ sql }}
        )
    {%- endcall %}

    {% do persist_docs(target_relation, model) %}
    {% do apply_grants(target_relation, grant_config, should_revoke=existing_relation is not none) %}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {{ adapter.commit() }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}

    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
