{#
    dbt-postgres names every array column's type `ARRAY` (information_schema's data_type), which is
    no type a cast can use: a unit test whose source has a text[] column (usage_logs.tags,
    docs/contract.md, section 15) builds its fixture with `cast(null as ARRAY)` and fails. This is
    dbt-postgres' own macro with array types named as Postgres spells them (`text[]`).
#}
{% macro postgres__get_columns_in_relation(relation) -%}
  {% call statement('get_columns_in_relation', fetch_result=True) %}
      select
          column_name,
          case when data_type = 'ARRAY' then substr(udt_name, 2) || '[]' else data_type end as data_type,
          character_maximum_length,
          numeric_precision,
          numeric_scale

      from {{ relation.information_schema('columns') }}
      where table_name = '{{ relation.identifier }}'
        {% if relation.schema %}
        and table_schema = '{{ relation.schema }}'
        {% endif %}
      order by ordinal_position

  {% endcall %}
  {% set table = load_result('get_columns_in_relation').table %}
  {{ return(sql_convert_columns_in_relation(table)) }}
{%- endmacro %}
