{# Create the index the incremental filter needs on the proxy's table, only when var create_source_indexes allows. #}
{% macro create_source_indexes() -%}
    {%- if execute and var('create_source_indexes', false) -%}
        {%- set source_relation = source('proxy', 'usage_logs') -%}
        create index if not exists usage_logs_created_at_idx on {{ source_relation }} (created_at);
        create index if not exists usage_logs_project_id_created_at_idx on {{ source_relation }} (project_id, created_at);
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
