{#
    dbt's check of an enforced contract, without its warning about `numeric` columns that have no
    precision: unbounded numeric is this project's choice (money is exact and unrounded from the
    source to the dashboard), so the warning would print on every build and mean nothing.
#}
{% macro postgres__get_empty_schema_sql(columns) %}
    {%- set missing_type = [] -%}
    select
    {% for i in columns %}
      {%- set col = columns[i] -%}
      {%- if col['data_type'] is not defined -%}
        {%- do missing_type.append(col['name']) -%}
      {%- endif -%}
      {% set col_name = adapter.quote(col['name']) if col.get('quote') else col['name'] %}
      {{ cast('null', col['data_type']) }} as {{ col_name }}{{ ", " if not loop.last }}
    {%- endfor -%}
    {%- if (missing_type | length) > 0 -%}
      {{ exceptions.column_type_missing(column_names=missing_type) }}
    {%- endif -%}
{% endmacro %}
