{#
    Spark: the seed's rows as literals. dbt-spark's own loader passes them as bindings, which the
    session method formats with Python: an empty cell arrives as the string 'None' (a price
    period's valid_to, every model_pattern) and an apostrophe ends the string. Here NULL is NULL
    and a value is an escaped Spark string literal cast to the column's type.
#}
{% macro spark__load_csv_rows(model, agate_table) %}
    {%- set column_override = model['config'].get('column_types', {}) -%}
    {%- set statements = [] -%}
    {%- for chunk in agate_table.rows | batch(get_batch_size()) -%}
        {%- set sql -%}
            insert into {{ this.render() }} values
            {% for row in chunk -%}
            ({%- for column_name in agate_table.column_names -%}
                {%- set column_type = column_override.get(column_name, adapter.convert_type(agate_table, loop.index0)) -%}
                {%- set value = row[loop.index0] -%}
                {%- if value is none -%}
                    cast(null as {{ column_type }})
                {%- else -%}
                    cast('{{ value | string | replace("\\", "\\\\") | replace("'", "\\'") }}' as {{ column_type }})
                {%- endif -%}
                {%- if not loop.last %}, {% endif -%}
            {%- endfor -%}){%- if not loop.last %},{% endif %}
            {% endfor -%}
        {%- endset -%}
        {%- do adapter.add_query(sql, abridge_sql_log=True) -%}
        {%- if loop.first -%}{%- do statements.append(sql) -%}{%- endif -%}
    {%- endfor -%}
    {{ return(statements[0]) }}
{% endmacro %}
