{#
    Incremental strategy `bucket_replace`: delete every target row whose bucket key (unique_key,
    e.g. project_id + hour_start) appears in the new batch, then insert the batch, in the model's
    one transaction. A bucket the batch does not mention is left alone, which is what lets
    aggregates outlive raw rows deleted by retention. `bucket_column` bounds the delete so it can
    use an index instead of scanning the whole target.
#}
{% macro get_incremental_bucket_replace_sql(arg_dict) -%}
    {%- set target_relation = arg_dict['target_relation'] -%}
    {%- set batch_relation = arg_dict['temp_relation'] -%}
    {%- set bucket_keys = arg_dict['unique_key'] -%}
    {%- if bucket_keys is string -%}{%- set bucket_keys = [bucket_keys] -%}{%- endif -%}
    {%- set bucket_column = config.require('bucket_column') -%}
    {%- set keys_csv = bucket_keys | join(', ') -%}
    {%- set columns_csv = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}

    delete from {{ target_relation }}
    where
        ({{ keys_csv }}) in (select distinct {{ keys_csv }} from {{ batch_relation }})
        and {{ bucket_column }} >= (select min({{ bucket_column }}) from {{ batch_relation }});

    insert into {{ target_relation }} ({{ columns_csv }})
    select {{ columns_csv }} from {{ batch_relation }}
{%- endmacro %}
