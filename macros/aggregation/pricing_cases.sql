{#
    Aggregates over rows of int_usage_logs_classified, for a grouped select: the counts and sums a
    group's figures are priced from (docs/contract.md, section 4), one set per pricing case. The
    hourly pass and the local days (int_usage_local_days) group by different keys and read the same.
#}
{% macro pricing_case_sums(token_classes=false) -%}
    count(*) as total_requests,
    {{ count_if('is_cached') }} as cached_requests,
    {{ count_if('is_error') }} as error_requests,
    sum(tokens_input) as tokens_input,
    sum(tokens_output) as tokens_output,
    {{ sum_if('tokens_input', 'is_cached') }} as cached_tokens_input,
    {{ sum_if('tokens_output', 'is_cached') }} as cached_tokens_output,
    sum(latency_ms) as latency_sum_ms,
    count(latency_ms) as latency_count,
    {{ sum_if('coalesce(recorded_cost_usd, 0)', 'is_recorded_priced') }} as recorded_cost_usd,
    {{ sum_if('case when is_cached then recorded_potential_cost_usd else recorded_cost_usd end', 'is_recorded_priced') }}
        as recorded_potential_cost_usd,
    {{ count_if('is_list_priced') }} as list_requests,
    {{ sum_if('tokens_input', 'is_list_priced') }} as list_tokens_input,
    {{ sum_if('tokens_output', 'is_list_priced') }} as list_tokens_output,
    {{ count_if('is_cached_list_priced') }} as cached_list_requests,
    {{ sum_if('coalesce(recorded_cost_usd, 0)', 'is_cached_list_priced') }} as cached_list_cost_usd,
    {{ sum_if('tokens_input', 'is_cached_list_priced') }} as cached_list_tokens_input,
    {{ sum_if('tokens_output', 'is_cached_list_priced') }} as cached_list_tokens_output
    {%- if token_classes %}
    {%- for column in token_class_columns() %},
    sum({{ column }}) as {{ column }},
    {{ sum_if(column, 'is_cached') }} as cached_{{ column }},
    {{ sum_if(column, 'is_list_priced') }} as list_{{ column }},
    {{ sum_if(column, 'is_cached_list_priced') }} as cached_list_{{ column }}
    {%- endfor %}
    {%- endif %}
{%- endmacro %}

{# The columns pricing_case_sums adds up; a group of groups adds them up again. #}
{% macro pricing_case_sum_columns(token_classes=false) -%}
    {%- set class_columns = [] -%}
    {%- if token_classes -%}
        {%- for column in token_class_columns() -%}
            {%- do class_columns.extend([column, 'cached_' ~ column, 'list_' ~ column, 'cached_list_' ~ column]) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(class_columns + [
        'total_requests', 'cached_requests', 'error_requests', 'tokens_input', 'tokens_output', 'cached_tokens_input',
        'cached_tokens_output', 'latency_sum_ms', 'latency_count', 'recorded_cost_usd',
        'recorded_potential_cost_usd', 'list_requests', 'list_tokens_input', 'list_tokens_output',
        'cached_list_requests', 'cached_list_cost_usd', 'cached_list_tokens_input', 'cached_list_tokens_output',
    ]) }}
{%- endmacro %}

{#
    A group's money from its pricing_case_sums and the per-1M-token prices match_model_prices
    gives it (NULL when no price applies): cost, potential and savings over the known values only,
    and the requests whose price is unknown (docs/contract.md, section 4). With token_classes, the
    list price is each class's tokens at its own price (section 14), and prompt_cache_savings_usd
    is what the provider's prompt cache took off the input of the requests it served.
#}
{% macro priced_totals(token_classes=false) -%}
    {%- set list_cost = list_price_of_sums('list_', token_classes) -%}
    {%- set cached_list_potential = list_price_of_sums('cached_list_', token_classes) -%}
    {{ add_known('recorded_cost_usd', add_known(list_cost, 'cached_list_cost_usd')) }} as total_cost_usd,
    {{ add_known('recorded_potential_cost_usd', add_known(list_cost, cached_list_potential)) }} as total_potential_cost_usd,
    {{ add_known(
        'recorded_potential_cost_usd - recorded_cost_usd',
        add_known('(' ~ list_cost ~ ') - (' ~ list_cost ~ ')', '(' ~ cached_list_potential ~ ') - cached_list_cost_usd')
    ) }} as total_savings_usd,
    case when input_usd_per_1m is null or output_usd_per_1m is null
        then list_requests + cached_list_requests else 0 end as unpriced_requests,
    {%- if token_classes %}
    {%- set served = {} %}
    {%- for column in ['tokens_cache_read', 'tokens_cache_write', 'tokens_cache_write_1h'] %}
        {%- do served.update({column: '(' ~ column ~ ' - coalesce(cached_' ~ column ~ ', 0))'}) %}
    {%- endfor %}
    case
        when {{ served.values() | join(' + ') }} = 0 then cast(0 as {{ money_type() }})
        else
            {{ usd_for_tokens(served['tokens_cache_read'], 'input_usd_per_1m') }}
            - {{ usd_for_tokens(served['tokens_cache_read'], 'cache_read_usd_per_1m') }}
            + {{ usd_for_tokens(served['tokens_cache_write'], 'input_usd_per_1m') }}
            - {{ usd_for_tokens(served['tokens_cache_write'], 'cache_write_usd_per_1m') }}
            + {{ usd_for_tokens(served['tokens_cache_write_1h'], 'input_usd_per_1m') }}
            - {{ usd_for_tokens(served['tokens_cache_write_1h'], 'cache_write_1h_usd_per_1m') }}
    end as prompt_cache_savings_usd
    {%- else %}
    cast(0 as {{ money_type() }}) as prompt_cache_savings_usd
    {%- endif %}
{%- endmacro %}

{# The list price of one pricing case's token sums (`prefix` list_ or cached_list_), NULL when the case has no requests. #}
{% macro list_price_of_sums(prefix, token_classes=false) -%}
    case when {{ 'list_requests' if prefix == 'list_' else 'cached_list_requests' }} > 0 then
        {{ list_price_of_tokens(prefix, token_classes) | indent(8) }}
    end
{%- endmacro %}

{#
    The list price of token sums named `<prefix>tokens_input` and `<prefix>tokens_output`: input and
    output at their prices, or with token_classes each class at its own (uncached input = input -
    the three cache classes, plain output = output - reasoning; docs/contract.md, section 14).
#}
{% macro list_price_of_tokens(prefix, token_classes=false) -%}
    {%- if token_classes -%}
    {{ usd_for_tokens('(' ~ prefix ~ 'tokens_input - ' ~ prefix ~ 'tokens_cache_read - ' ~ prefix ~ 'tokens_cache_write - '
        ~ prefix ~ 'tokens_cache_write_1h)', 'input_usd_per_1m') }}
    + {{ usd_for_tokens(prefix ~ 'tokens_cache_read', 'cache_read_usd_per_1m') }}
    + {{ usd_for_tokens(prefix ~ 'tokens_cache_write', 'cache_write_usd_per_1m') }}
    + {{ usd_for_tokens(prefix ~ 'tokens_cache_write_1h', 'cache_write_1h_usd_per_1m') }}
    + {{ usd_for_tokens('(' ~ prefix ~ 'tokens_output - ' ~ prefix ~ 'tokens_reasoning)', 'output_usd_per_1m') }}
    + {{ usd_for_tokens(prefix ~ 'tokens_reasoning', 'reasoning_usd_per_1m') }}
    {%- else -%}
    {{ usd_for_tokens(prefix ~ 'tokens_input', 'input_usd_per_1m') }}
    + {{ usd_for_tokens(prefix ~ 'tokens_output', 'output_usd_per_1m') }}
    {%- endif -%}
{%- endmacro %}
