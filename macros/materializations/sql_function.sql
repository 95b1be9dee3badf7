{#
    Materialization `sql_function`: the model's SQL is the body of a database function, created
    (dropped and re-created, so a changed signature applies) in the model's schema in one
    transaction. Config: `arguments`, `argument_types`, `replaces_argument_types` (older signatures
    to drop, so a changed argument list leaves no overload behind), `returns`, `language` (default plpgsql),
    `volatility` (default stable). The function is `security invoker` (it reads with the caller's
    rights, so row level security applies) and runs with a fixed search_path, so every relation
    in the body must be schema-qualified (ref() does that), and with JIT and parallel workers
    off: its queries are small, and compiling them or starting workers would cost more than
    running them. `settings` (a dict) adds more `set name = value` clauses; a `set_config(name,
    value, true)` in the body for one of those names is undone when the function returns.
    Grants are lost with the old function: re-apply them in a post-hook (it runs in the same
    transaction).
#}
{% materialization sql_function, adapter='postgres' %}
    {%- set function_name = adapter.quote(schema) ~ '.' ~ adapter.quote(model['alias']) -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {% do adapter.create_schema(api.Relation.create(database=database, schema=schema)) %}

    {% call statement('main') -%}
        {%- for old_types in config.get('replaces_argument_types', []) %}
        drop function if exists {{ function_name }}({{ old_types }});
        {%- endfor %}
        drop function if exists {{ function_name }}({{ config.require('argument_types') }});
        create function {{ function_name }}({{ config.require('arguments') }})
        returns {{ config.require('returns') }}
        language {{ config.get('language', 'plpgsql') }}
        {{ config.get('volatility', 'stable') }}
        security invoker
        set search_path = pg_catalog, pg_temp
        set jit = off
        set max_parallel_workers_per_gather = 0
        {%- for name, value in config.get('settings', {}).items() %}
        set {{ name }} = {{ value }}
        {%- endfor %}
        as $watchllm_function$
        {{ sql }}
        $watchllm_function$
    {%- endcall %}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {% do adapter.commit() %}
    {{ run_hooks(post_hooks, inside_transaction=False) }}

    {{ return({'relations': []}) }}
{% endmaterialization %}

{#
    Other engines (Spark): the dashboard function lives in Postgres only, where `spark publish`
    copies the Spark-built aggregates; the model builds nothing there.
#}
{% materialization sql_function, default %}
    {{ log("get_dashboard_stats is a Postgres function: skipped on " ~ target.type ~ " (publish the aggregates to Postgres)", info=True) }}
    {% call noop_statement('main', 'SKIP') %}select 1{% endcall %}
    {{ return({'relations': []}) }}
{% endmaterialization %}
