{#
    Aggregates over rows of int_usage_logs_classified, for a grouped select: the counts and sums a
    group's figures are priced from (docs/contract.md, section 4), one set per pricing case. The
    hourly pass and the local days (int_usage_local_days) group by different keys and read the same.
#}
{% macro pricing_case_sums() -%}
    count(*) as total_requests,
    {{ count_if('is_cached') }} as cached_requests,
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
{%- endmacro %}

{# The columns pricing_case_sums adds up; a group of groups adds them up again. #}
{% macro pricing_case_sum_columns() -%}
    {{ return([
        'total_requests', 'cached_requests', 'tokens_input', 'tokens_output', 'cached_tokens_input',
        'cached_tokens_output', 'latency_sum_ms', 'latency_count', 'recorded_cost_usd',
        'recorded_potential_cost_usd', 'list_requests', 'list_tokens_input', 'list_tokens_output',
        'cached_list_requests', 'cached_list_cost_usd', 'cached_list_tokens_input', 'cached_list_tokens_output',
    ]) }}
{%- endmacro %}

{#
    A group's money from its pricing_case_sums and the per-1M-token prices in `input_usd_per_1m`
    and `output_usd_per_1m` (NULL when no price applies): cost, potential and savings over the
    known values only, and the requests whose price is unknown (docs/contract.md, section 4).
#}
{% macro priced_totals() -%}
    {%- set list_cost -%}
        case when list_requests > 0 then
            {{ usd_for_tokens('list_tokens_input', 'input_usd_per_1m') }}
            + {{ usd_for_tokens('list_tokens_output', 'output_usd_per_1m') }}
        end
    {%- endset -%}
    {%- set cached_list_potential -%}
        case when cached_list_requests > 0 then
            {{ usd_for_tokens('cached_list_tokens_input', 'input_usd_per_1m') }}
            + {{ usd_for_tokens('cached_list_tokens_output', 'output_usd_per_1m') }}
        end
    {%- endset -%}
    {{ add_known('recorded_cost_usd', add_known(list_cost, 'cached_list_cost_usd')) }} as total_cost_usd,
    {{ add_known('recorded_potential_cost_usd', add_known(list_cost, cached_list_potential)) }} as total_potential_cost_usd,
    {{ add_known(
        'recorded_potential_cost_usd - recorded_cost_usd',
        add_known('(' ~ list_cost ~ ') - (' ~ list_cost ~ ')', '(' ~ cached_list_potential ~ ') - cached_list_cost_usd')
    ) }} as total_savings_usd,
    case when input_usd_per_1m is null or output_usd_per_1m is null
        then list_requests + cached_list_requests else 0 end as unpriced_requests
{%- endmacro %}
