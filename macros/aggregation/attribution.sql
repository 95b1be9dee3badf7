{#
    Who spent it (docs/contract.md, section 15): the API key, the end user, the tags and the HTTP
    status the proxy may log. Like the token classes, the models read the columns usage_logs has,
    found at compile time; a table without any of them compiles to the figures of before, and the
    dimension pass (int_usage_hourly_by_dimension) then has no rows.
#}

{# The attribution columns usage_logs may carry, and the dimension each label column feeds. #}
{% macro attribution_dimensions() -%}
    {{ return({'api_key': 'api_key_id', 'end_user': 'end_user', 'tag': 'tags'}) }}
{%- endmacro %}

{# The dimensions usage_logs has a column for, in a fixed order. #}
{% macro logged_dimensions() -%}
    {%- set present = usage_log_columns() -%}
    {%- set found = [] -%}
    {%- for dimension, column in attribution_dimensions().items() if column in present -%}
        {%- do found.append(dimension) -%}
    {%- endfor -%}
    {{ return(found) }}
{%- endmacro %}

{# True when usage_logs has status_code: errors are counted from it, else every request is a success. #}
{% macro usage_logs_have_status_code() -%}
    {{ return('status_code' in usage_log_columns()) }}
{%- endmacro %}

{# The most distinct tags one request may carry; a request with more is quarantined (section 16). #}
{% macro max_tags_per_request() -%}32{%- endmacro %}

{# The value a request without a label counts under, and the RPC's row for the values below its top. #}
{% macro no_label_value() -%}(none){%- endmacro %}

{# A key or user label as the breakdown keys it: trimmed, case kept, NULL when blank. #}
{% macro attribution_label(value) -%}
    nullif({{ trim_whitespace('cast(' ~ value ~ ' as ' ~ text_type() ~ ')') }}, '')
{%- endmacro %}

{#
    The request's tags as a text array: each trimmed, blanks dropped, each distinct tag once (case
    kept), NULL when none is left. `column_type` is the column's type in usage_logs: a text array,
    or json/jsonb holding an array of strings (anything but an array is quarantined, see
    tags_are_an_array).
#}
{% macro normalised_tags(column, column_type) -%}
    {{ return(adapter.dispatch('normalised_tags', 'watchllm_analytics')(column, column_type)) }}
{%- endmacro %}
{% macro default__normalised_tags(column, column_type) -%}
    {%- set kind = tag_column_kind(column_type) -%}
    (
        select array_agg(distinct tag)
        from (
            select {{ trim_whitespace('raw_tag') }} as tag
            {%- if kind == 'array' %}
            from unnest({{ column }}) as raw_tag
            {%- else %}
            from jsonb_array_elements_text(
                case when jsonb_typeof(cast({{ column }} as jsonb)) = 'array' then cast({{ column }} as jsonb) end
            ) as raw_tag
            {%- endif %}
        ) as trimmed
        where tag <> ''
    )
{%- endmacro %}
{% macro spark__normalised_tags(column, column_type) -%}
    nullif(array_distinct(filter(transform({{ column }}, raw_tag -> {{ trim_whitespace('raw_tag') }}), tag -> tag <> '')), array())
{%- endmacro %}

{# False for a json/jsonb tags value that is not an array (NULL is fine: no tags). #}
{% macro tags_are_an_array(column, column_type) -%}
    {%- if tag_column_kind(column_type) == 'json' -%}
    coalesce(jsonb_typeof(cast({{ column }} as jsonb)) = 'array', true)
    {%- else -%}
    true
    {%- endif -%}
{%- endmacro %}

{# 'array' or 'json' for the tags column's type; any other type stops the build with what to do. #}
{% macro tag_column_kind(column_type) -%}
    {%- set lowered = (column_type or '') | lower -%}
    {%- if lowered in ('json', 'jsonb') -%}
        {{ return('json') }}
    {%- elif lowered.startswith('array') or lowered.endswith('[]') or lowered in ('_text', '_varchar') -%}
        {{ return('array') }}
    {%- else -%}
        {{ exceptions.raise_compiler_error("usage_logs.tags has type " ~ column_type
            ~ "; make it text[] or jsonb (a JSON array of strings), or drop the column (docs/contract.md, section 15)") }}
    {%- endif -%}
{%- endmacro %}

{# The number of tags and the longest tag's length (characters) of a normalised tags array. #}
{% macro tag_count(tags) -%}{{ return(adapter.dispatch('tag_count', 'watchllm_analytics')(tags)) }}{%- endmacro %}
{% macro default__tag_count(tags) -%}coalesce(cardinality({{ tags }}), 0){%- endmacro %}
{% macro spark__tag_count(tags) -%}coalesce(size({{ tags }}), 0){%- endmacro %}
{% macro longest_tag_length(tags) -%}{{ return(adapter.dispatch('longest_tag_length', 'watchllm_analytics')(tags)) }}{%- endmacro %}
{% macro default__longest_tag_length(tags) -%}
    coalesce((select max(char_length(tag)) from unnest({{ tags }}) as tag), 0)
{%- endmacro %}
{% macro spark__longest_tag_length(tags) -%}
    coalesce(array_max(transform({{ tags }}, tag -> char_length(tag))), 0)
{%- endmacro %}

{#
    A from-clause item that gives each row of `relation` once per tag as `tag`, and once as
    (none) when it has no tag: a multi-tag request counts once under each of its tags.
#}
{% macro one_row_per_tag(relation, tags) -%}{{ return(adapter.dispatch('one_row_per_tag', 'watchllm_analytics')(relation, tags)) }}{%- endmacro %}
{% macro default__one_row_per_tag(relation, tags) -%}
    {{ relation }} cross join lateral unnest(coalesce({{ tags }}, array['{{ no_label_value() }}'])) as request_tags (tag)
{%- endmacro %}
{% macro spark__one_row_per_tag(relation, tags) -%}
    {{ relation }} lateral view explode(coalesce({{ tags }}, array('{{ no_label_value() }}'))) request_tags as tag
{%- endmacro %}

{# The type of an array of text on the engine. #}
{% macro text_array_type() -%}{{ return(adapter.dispatch('text_array_type', 'watchllm_analytics')()) }}{%- endmacro %}
{% macro default__text_array_type() -%}text[]{%- endmacro %}
{% macro spark__text_array_type() -%}array<string>{%- endmacro %}

{# The text type of the engine. #}
{% macro text_type() -%}{{ return(adapter.dispatch('text_type', 'watchllm_analytics')()) }}{%- endmacro %}
{% macro default__text_type() -%}text{%- endmacro %}
{% macro spark__text_type() -%}string{%- endmacro %}
