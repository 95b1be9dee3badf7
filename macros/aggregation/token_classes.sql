{#
    The token classes of docs/contract.md, section 14. The proxy's usage_logs may or may not carry
    their columns; the models read the ones it has, find out which at compile time, and build the
    class pricing only when there is one. A table without them compiles to the pass without
    classes, and every figure is what it would be without this section.
#}

{# The class count columns usage_logs may carry, each a subset of tokens_input or tokens_output. #}
{% macro token_class_columns() -%}
    {{ return(['tokens_cache_read', 'tokens_cache_write', 'tokens_cache_write_1h', 'tokens_reasoning']) }}
{%- endmacro %}

{#
    The lower-cased column names of the proxy's usage_logs, read from the database at execution
    ([] while dbt parses). The source is found through the graph, so a model asking is not made a
    child of the source.
#}
{% macro usage_log_columns() -%}
    {%- if not execute -%}{{ return([]) }}{%- endif -%}
    {#- a unit test's graph has no sources: its fixture has the columns the model reads -#}
    {%- set node = (graph.get('sources') or {}).values() | selectattr('source_name', 'equalto', 'proxy')
        | selectattr('name', 'equalto', 'usage_logs') | first -%}
    {%- if node is not defined or node is none -%}{{ return([]) }}{%- endif -%}
    {%- set relation = adapter.get_relation(database=node.database, schema=node.schema, identifier=node.identifier) -%}
    {%- if relation is none -%}{{ return([]) }}{%- endif -%}
    {{ return(adapter.get_columns_in_relation(relation) | map(attribute='name') | map('lower') | list) }}
{%- endmacro %}

{# The data type of one column of the proxy's usage_logs as the database names it (none while parsing or when absent). #}
{% macro usage_log_column_type(column) -%}
    {%- if not execute -%}{{ return(none) }}{%- endif -%}
    {%- set node = (graph.get('sources') or {}).values() | selectattr('source_name', 'equalto', 'proxy')
        | selectattr('name', 'equalto', 'usage_logs') | first -%}
    {%- if node is not defined or node is none -%}{{ return(none) }}{%- endif -%}
    {%- set relation = adapter.get_relation(database=node.database, schema=node.schema, identifier=node.identifier) -%}
    {%- if relation is none -%}{{ return(none) }}{%- endif -%}
    {%- for found in adapter.get_columns_in_relation(relation) if found.name | lower == column -%}
        {{ return(found.data_type) }}
    {%- endfor -%}
    {{ return(none) }}
{%- endmacro %}

{# True when usage_logs carries any class count or service_tier: the pass then prices by class. #}
{% macro usage_logs_have_token_classes() -%}
    {%- set present = usage_log_columns() -%}
    {%- for column in token_class_columns() + ['service_tier'] -%}
        {%- if column in present -%}{{ return(true) }}{%- endif -%}
    {%- endfor -%}
    {{ return(false) }}
{%- endmacro %}

{#
    A request's prompt-size band: the largest threshold of the price list its tokens_input exceeds,
    else 0. Every model's threshold is one of these, so a request is above its model's threshold
    exactly when its band reaches it, and requests can be summed per band before any price is
    matched. The thresholds are read from `prices` (int_model_prices_resolved) when the model runs.
#}
{% macro prompt_band(tokens_input, prices) -%}
    {%- set thresholds = [] -%}
    {%- if execute -%}
        {%- set found = run_query(
            'select distinct threshold_input_tokens from ' ~ prices
            ~ ' where threshold_input_tokens is not null order by 1 desc') -%}
        {%- set thresholds = found.columns[0].values() | map('int') | list -%}
    {%- endif -%}
    {%- if thresholds -%}
    case
        {%- for threshold in thresholds %}
        when {{ tokens_input }} > {{ threshold }} then {{ threshold }}
        {%- endfor %}
        else 0
    end
    {%- else -%}
    0
    {%- endif -%}
{%- endmacro %}

{# The provider's service tier as logged, as one of the tiers prices are kept for; anything else is standard. #}
{% macro normalised_service_tier(value) -%}
    case lower({{ trim_whitespace(value) }})
        when 'batch' then 'batch'
        when 'flex' then 'flex'
        when 'priority' then 'priority'
        else 'standard'
    end
{%- endmacro %}
