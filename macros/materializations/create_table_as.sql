{#
    Config `create_in_parallel: true`: the first time a table with an enforced contract is built (a
    first build), it is created from its query with `create table ... as select`, and its
    constraints are added afterwards, instead of dbt's empty table followed by `insert ... select`.
    The types, not-null and check constraints end up the same: every column is cast to its contract
    type, and one `alter table` adds the constraints, which PostgreSQL validates in one scan of the
    new table.
    Why: PostgreSQL never runs the SELECT of an `insert ... select` with parallel workers, and it
    may for `create table as`. The hourly pass over 10M raw rows took 47.8 s as an insert and
    36.2 s as a `create table as` (docs/performance.md). Only the pass asks for it: it runs alone in
    a full build, while the roll-ups after it run two at a time on dbt's two threads, where
    parallel plans of both made each slower (the hourly mart 35 -> 44 s at 10M rows). Temporary
    tables (dbt already creates them with `create ... as`), models without the config, and models
    with any other kind of constraint (unique, primary or foreign key, custom, model-level) keep
    dbt's own path.
#}
{% macro postgres__create_table_as(temporary, relation, sql) -%}
    {%- set contract_config = config.get('contract') -%}
    {%- if temporary or not config.get('create_in_parallel', false) or not contract_config.enforced
          or not constraints_addable_after_create() -%}
        {{ return(dbt.postgres__create_table_as(temporary, relation, sql)) }}
    {%- endif -%}
    {%- set unlogged = config.get('unlogged', default=false) -%}
    {%- set sql_header = config.get('sql_header', none) -%}
    {%- set columns = model['columns'].values() | list -%}
    {%- set column_names = [] -%}
    {%- for column in columns -%}
        {%- do column_names.append(adapter.quote(column['name']) if column.get('quote') else column['name']) -%}
    {%- endfor %}

    {{ sql_header if sql_header is not none }}

    {{ get_assert_columns_equivalent(sql) }}

    create {% if unlogged -%} unlogged {%- endif %} table {{ relation }} as
    select
        {%- for column in columns %}
        cast({{ column_names[loop.index0] }} as {{ column['data_type'] }}) as {{ column_names[loop.index0] }}{{ ',' if not loop.last }}
        {%- endfor %}
    from (
        {{ sql }}
    ) as model_subq;

    {%- set additions = [] -%}
    {%- for column in columns -%}
        {%- set column_name = column_names[loop.index0] -%}
        {%- for constraint in column.get('constraints', []) -%}
            {%- if constraint['type'] == 'not_null' -%}
                {%- do additions.append('alter column ' ~ column_name ~ ' set not null') -%}
            {%- else -%}
                {%- set constraint_name = ('constraint ' ~ constraint['name'] ~ ' ') if constraint.get('name') else '' -%}
                {%- do additions.append('add ' ~ constraint_name ~ 'check (' ~ constraint['expression'] ~ ')') -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor %}
    {%- if additions %}

    alter table {{ relation }}
        {{ additions | join(',\n        ') }}
    {%- endif %}
{%- endmacro %}

{# Whether every constraint of the model is a column's not_null or check (which `alter table` adds as the create would). #}
{% macro constraints_addable_after_create() -%}
    {%- if model.get('constraints') -%}{{ return(false) }}{%- endif -%}
    {%- for column in model['columns'].values() -%}
        {%- for constraint in column.get('constraints', []) -%}
            {%- if constraint['type'] not in ['not_null', 'check'] or (constraint['type'] == 'check' and not constraint.get('expression')) -%}
                {{ return(false) }}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(true) }}
{%- endmacro %}
