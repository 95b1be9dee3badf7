{#
    Incremental strategy `bucket_replace`: replace every target row whose bucket key (unique_key,
    e.g. project_id + hour_start) appears in the new batch by the batch's rows, in the model's one
    transaction. A bucket the batch does not mention is left alone, which is what lets aggregates
    outlive raw rows deleted by retention. `bucket_column` bounds the delete so it can use an index
    instead of scanning the whole target. With `marks_pending_rebuilds='hour'|'day'` (the bucket
    column's type) the model also tells the marts that read it which buckets it replaced
    (macros/incremental/pending_rebuilds.sql).
#}
{% macro get_incremental_bucket_replace_sql(arg_dict) -%}
    {#- the mark goes first so that dbt reports the row count of the replacing statement, which comes last -#}
    {%- if config.get('marks_pending_rebuilds', false) -%}
    {{ mark_pending_rebuilds(arg_dict, config.require('bucket_column'), config.get('marks_pending_rebuilds')) }};
    {% endif -%}
    {%- if config.get('records_test_window', false) -%}
    {{ record_test_window(arg_dict['temp_relation'], config.require('bucket_column')) }};
    {% endif -%}
    {{ adapter.dispatch('bucket_replace_sql', 'watchllm_analytics')(arg_dict) }}
{%- endmacro %}

{# Delete the batch's buckets, insert the batch. #}
{% macro default__bucket_replace_sql(arg_dict) -%}
    {%- set target_relation = arg_dict['target_relation'] -%}
    {%- set batch_relation = arg_dict['temp_relation'] -%}
    {%- set columns_csv = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}

    delete from {{ target_relation }}
    where {{ in_batch_buckets(arg_dict) }};

    insert into {{ target_relation }} ({{ columns_csv }})
    select {{ columns_csv }} from {{ batch_relation }}
{%- endmacro %}

{#
    Postgres: when the batch replaces a large part of the table (a backfill of most of the history),
    maintaining the indexes row by row costs more than everything else: at 10M raw rows, inserting
    the 3.9M rows of int_usage_hourly_by_model takes ~7 s without its unique index and ~55 s with
    it (measured on a copy of the 10M-row bench database). Then the table is rewritten instead: the rows the batch does not replace and
    the batch go into a new table, its indexes are built in one sorted pass, and it takes the old
    table's name, all in the model's transaction, so readers see the old table until the commit
    (they wait only for the rename). The post-hooks put row level security, the policy and grants
    on it as on every run. var bucket_replace_rewrite_fraction (default 0.25): the batch's share of
    the table (in pages, which Postgres knows without reading them) from which the table is
    rewritten; 0 always rewrites, above 1 never does. A table other objects depend on (someone's
    view) is never rewritten.
#}
{% macro postgres__bucket_replace_sql(arg_dict) -%}
    {%- if execute and bucket_replace_rewrites(arg_dict) -%}
        {{ rewrite_with_batch(arg_dict) }}
    {%- else -%}
        {{ default__bucket_replace_sql(arg_dict) }}
    {%- endif -%}
{%- endmacro %}

{# Target rows in a bucket of the batch (the rows the batch replaces). #}
{% macro in_batch_buckets(arg_dict, target_alias=none) -%}
    {%- set bucket_keys = arg_dict['unique_key'] -%}
    {%- if bucket_keys is string -%}{%- set bucket_keys = [bucket_keys] -%}{%- endif -%}
    {%- set bucket_column = config.require('bucket_column') -%}
    {%- set prefix = (target_alias ~ '.') if target_alias else '' -%}
    ({% for key in bucket_keys %}{{ prefix ~ key }}{{ ', ' if not loop.last }}{% endfor %})
        in (select distinct {{ bucket_keys | join(', ') }} from {{ arg_dict['temp_relation'] }})
    and {{ prefix ~ bucket_column }} >= (select min({{ bucket_column }}) from {{ arg_dict['temp_relation'] }})
{%- endmacro %}

{% macro bucket_replace_rewrites(arg_dict) -%}
    {%- set fraction = var('bucket_replace_rewrite_fraction', 0.25) -%}
    {%- if fraction is string and modules.re.match('^[0-9]+(\.[0-9]+)?$', fraction | trim) -%}
        {%- set fraction = fraction | float -%}
    {%- endif -%}
    {%- if fraction is string or fraction is boolean or fraction is none or fraction < 0 -%}
        {{ exceptions.raise_compiler_error("var 'bucket_replace_rewrite_fraction' must be a number >= 0, got: " ~ fraction) }}
    {%- endif -%}
    {%- set target = arg_dict['target_relation'] -%}
    {#- Shares of rows as shares of pages, which Postgres knows without reading them. -#}
    {%- set decision_query -%}
        select
            exists (select 1 from {{ arg_dict['temp_relation'] }})
            and pg_relation_size('{{ arg_dict['temp_relation'] }}')
                >= {{ fraction | float }} * pg_relation_size('{{ target }}')
            and not exists (
                select 1 from pg_depend
                where refobjid = '{{ target }}'::regclass and classid = 'pg_rewrite'::regclass
            )
    {%- endset -%}
    {{ return(run_query(decision_query).rows[0][0]) }}
{%- endmacro %}

{% macro rewrite_with_batch(arg_dict) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set rewritten = target.incorporate(path={'identifier': target.identifier ~ '__rewrite'}) -%}
    {%- set replaced = target.incorporate(path={'identifier': target.identifier ~ '__replaced'}) -%}
    {%- set columns_csv = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}

    drop table if exists {{ rewritten }};
    create table {{ rewritten }} (like {{ target }} including all excluding indexes);

    insert into {{ rewritten }} ({{ columns_csv }})
    select {{ columns_csv }} from {{ target }} as kept
    where ({{ in_batch_buckets(arg_dict, 'kept') }}) is not true;

    insert into {{ rewritten }} ({{ columns_csv }})
    select {{ columns_csv }} from {{ arg_dict['temp_relation'] }};

    {% for index in config.get('indexes', []) -%}
    {{ get_create_index_sql(rewritten, index) }};
    {% endfor -%}

    alter table {{ target }} rename to {{ replaced.identifier }};
    alter table {{ rewritten }} rename to {{ target.identifier }};
    drop table {{ replaced }};
    analyze {{ target }}
{%- endmacro %}
