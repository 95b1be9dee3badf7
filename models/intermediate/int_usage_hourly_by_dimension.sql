{#
    Usage per project, UTC hour, dimension and value (docs/contract.md, section 15): the API key,
    the end user and each tag a request carries, from the same classified requests as the hourly
    pass and over the same rebuild window. usage_by_dimension_daily rolls up from here, and
    get_usage_breakdown reads the hours of local days and the newest hours.

    A request counts once under its key, once under its end user, and once under each distinct tag
    (so the tag rows of an hour add up to more than its requests when requests carry several tags);
    a request without a value counts under (none). Money is priced like the hourly pass: per group of
    provider, model, UTC date, service tier and prompt band, where a price is constant, then added up
    per value. A dimension whose column usage_logs lacks has no rows; without any, the table is empty.
#}
{{
    config(
        materialized=aggregate_materialization(),
        tags=['hourly'],
        incremental_strategy=aggregate_incremental_strategy(),
        partition_by=aggregate_partition_by('partition_date'),
        unique_key=['project_id', 'hour_start'],
        bucket_column='hour_start',
        marks_pending_rebuilds='hour',
        full_refresh=false,
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['project_id', 'hour_start', 'dimension', 'value'], 'unique': true},
            {'columns': ['hour_start']},
        ],
        pre_hook=[
            "{{ lock_aggregates() }}",
            "{{ set_build_work_mem() }}",
        ],
        post_hook=["{{ record_newest_bucket('hour_start') }}"],
    )
}}

{%- set has_token_classes = usage_logs_have_token_classes() %}
{%- set dimensions = logged_dimensions() %}
{%- set columns = attribution_dimensions() %}

with classified_requests as (

    select * from {{ ref('int_usage_logs_classified') }}
    where {{ incremental_time_filter('created_at', 'hour_start', 'hour', retained='usage_logs') }}

),

labelled_requests as (

    {%- for dimension in dimensions %}
    select
        classified_requests.*,
        '{{ dimension }}' as dimension,
        {%- if dimension == 'tag' %}
        request_tags.tag as value
    from {{ one_row_per_tag('classified_requests', 'classified_requests.tags') }}
        {%- else %}
        coalesce(classified_requests.{{ columns[dimension] }}, '{{ no_label_value() }}') as value
    from classified_requests
        {%- endif %}
    {{ 'union all' if not loop.last }}
    {%- else %}
    -- usage_logs logs no key, end user or tags: no rows
    select
        classified_requests.*,
        cast(null as {{ text_type() }}) as dimension,
        cast(null as {{ text_type() }}) as value
    from classified_requests
    where 1 = 0
    {%- endfor %}

),

keyed_requests as (

    select
        project_id,
        hour_start,
        dimension,
        value,
        latency_key
        {%- if var('latency_sketches', true) %},
        count(*) over (partition by project_id, hour_start, dimension, value, latency_key) as latency_key_requests
        {%- endif %}
    from labelled_requests

),

value_sketches as (

    select
        project_id,
        hour_start,
        dimension,
        value,
        {{ sketch_from_row_key_counts('latency_key', 'latency_key_requests') if var('latency_sketches', true)
            else 'cast(null as ' ~ sketch_type() ~ ')' }} as latency_sketch
    from keyed_requests
    group by project_id, hour_start, dimension, value

),

priced_group_sums as (

    select
        project_id,
        hour_start,
        usage_date,
        dimension,
        value,
        provider,
        model,
        service_tier,
        prompt_band,
        {{ pricing_case_sums(has_token_classes) | indent(8) }}
    from labelled_requests
    group by project_id, hour_start, usage_date, dimension, value, provider, model, service_tier, prompt_band

),

price_matched as (

    {{ match_model_prices('priced_group_sums', 'usage_date', ref('int_model_prices_resolved'),
        service_tier='service_tier' if has_token_classes else none,
        prompt_band='prompt_band' if has_token_classes else none) | indent(4) }}

),

priced as (

    select
        *,
        {{ priced_totals(has_token_classes) | indent(8) }}
    from price_matched

),

value_sums as (

    select
        project_id,
        hour_start,
        dimension,
        value,
        sum(total_requests) as total_requests,
        sum(cached_requests) as cached_requests,
        sum(error_requests) as error_requests,
        sum(tokens_input) as tokens_input,
        sum(tokens_output) as tokens_output,
        sum(total_cost_usd) as total_cost_usd,
        sum(total_potential_cost_usd) as total_potential_cost_usd,
        sum(total_savings_usd) as total_savings_usd,
        sum(unpriced_requests) as unpriced_requests,
        sum(latency_sum_ms) as latency_sum_ms,
        sum(latency_count) as latency_count,
        sum(coalesce(cached_tokens_input, 0)) as cached_tokens_input,
        sum(coalesce(cached_tokens_output, 0)) as cached_tokens_output,
        {%- if has_token_classes %}
        sum(tokens_cache_read) as tokens_cache_read,
        sum(tokens_cache_write + tokens_cache_write_1h) as tokens_cache_write,
        sum(tokens_reasoning) as tokens_reasoning,
        {%- else %}
        0 as tokens_cache_read,
        0 as tokens_cache_write,
        0 as tokens_reasoning,
        {%- endif %}
        sum(prompt_cache_savings_usd) as prompt_cache_savings_usd
    from priced
    group by project_id, hour_start, dimension, value

),

final as (

    select
        value_sums.project_id,
        value_sums.hour_start,
        value_sums.dimension,
        value_sums.value,
        cast(value_sums.total_requests as bigint) as total_requests,
        cast(value_sums.cached_requests as bigint) as cached_requests,
        cast(value_sums.error_requests as bigint) as error_requests,
        cast(value_sums.tokens_input as {{ count_sum_type() }}) as tokens_input,
        cast(value_sums.tokens_output as {{ count_sum_type() }}) as tokens_output,
        value_sums.total_cost_usd,
        value_sums.total_potential_cost_usd,
        value_sums.total_savings_usd,
        cast(value_sums.unpriced_requests as bigint) as unpriced_requests,
        cast(value_sums.latency_sum_ms as {{ count_sum_type() }}) as latency_sum_ms,
        cast(value_sums.latency_count as bigint) as latency_count,
        cast(value_sums.cached_tokens_input as {{ count_sum_type() }}) as cached_tokens_input,
        cast(value_sums.cached_tokens_output as {{ count_sum_type() }}) as cached_tokens_output,
        cast(value_sums.tokens_cache_read as {{ count_sum_type() }}) as tokens_cache_read,
        cast(value_sums.tokens_cache_write as {{ count_sum_type() }}) as tokens_cache_write,
        cast(value_sums.tokens_reasoning as {{ count_sum_type() }}) as tokens_reasoning,
        cast(value_sums.prompt_cache_savings_usd as {{ money_type() }}) as prompt_cache_savings_usd,
        value_sketches.latency_sketch
    from value_sums
    inner join value_sketches
        on value_sums.project_id = value_sketches.project_id
        and value_sums.hour_start = value_sketches.hour_start
        and value_sums.dimension = value_sketches.dimension
        and value_sums.value = value_sketches.value

)

select final.*{{ partition_date_column("final.hour_start") }}
from final
order by hour_start
