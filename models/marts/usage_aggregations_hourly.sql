{#
    Usage per project and UTC hour (docs/contract.md, sections 5 and 8), rolled up from
    int_usage_hourly_by_model: sums and counts added up, the provider and model maps from the
    bucket's own lists, and the models' latency sketches merged in the bucket's row.
#}

{{
    config(
        materialized=aggregate_materialization(),
        tags=['hourly'],
        incremental_strategy=aggregate_incremental_strategy(),
        partition_by=aggregate_partition_by('partition_date'),
        unique_key=['project_id', 'hour_start'],
        bucket_column='hour_start',
        full_refresh=false,
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['project_id', 'hour_start'], 'unique': true},
            {'columns': ['hour_start']},
        ],
        pre_hook=[
            "{{ lock_aggregates() }}",
            "{{ set_build_work_mem() }}",
            "{{ lock_pending_rebuild() }}",
        ],
        post_hook=["{{ clear_pending_rebuild() }}"],
    )
}}

with hourly_by_model as (

    select * from {{ ref('int_usage_hourly_by_model') }}
    where {{ incremental_time_filter('hour_start', 'hour_start', 'hour', from_pending=true, retained='int_usage_hourly_by_model') }}

),

hourly_totals as (

    select
        project_id,
        hour_start,
        sum(total_requests) as total_requests,
        sum(cached_requests) as cached_requests,
        sum(error_requests) as error_requests,
        sum(tokens_input) as tokens_input,
        sum(tokens_output) as tokens_output,
        sum(total_cost_usd) as total_cost_usd,
        sum(total_potential_cost_usd) as total_potential_cost_usd,
        sum(total_savings_usd) as total_savings_usd,
        sum(latency_sum_ms) as latency_sum_ms,
        sum(latency_count) as latency_count,
        sum(unpriced_requests) as unpriced_requests,
        sum(cached_tokens_input) as cached_tokens_input,
        sum(cached_tokens_output) as cached_tokens_output,
        sum(tokens_cache_read) as tokens_cache_read,
        sum(tokens_cache_write + tokens_cache_write_1h) as tokens_cache_write,
        sum(tokens_reasoning) as tokens_reasoning,
        sum(prompt_cache_savings_usd) as prompt_cache_savings_usd,
        {{ list_of('provider') }} as providers,
        {{ list_of('model') }} as models,
        {{ list_of('total_requests') }} as requests_per_row,
        {{ sketch_list('latency_sketch') }} as latency_sketches
    from hourly_by_model
    group by project_id, hour_start

),

final as (

    select
        hourly_totals.project_id,
        hourly_totals.hour_start,
        cast(hourly_totals.total_requests as bigint) as total_requests,
        cast(hourly_totals.cached_requests as bigint) as cached_requests,
        {{ percent_of('hourly_totals.cached_requests', 'hourly_totals.total_requests') }} as cache_hit_rate,
        cast(hourly_totals.tokens_input as bigint) as tokens_input,
        cast(hourly_totals.tokens_output as bigint) as tokens_output,
        cast(hourly_totals.tokens_input + hourly_totals.tokens_output as bigint) as total_tokens,
        hourly_totals.total_cost_usd,
        hourly_totals.total_potential_cost_usd,
        hourly_totals.total_savings_usd,
        {{ ratio_2dp('hourly_totals.latency_sum_ms', 'hourly_totals.latency_count') }} as avg_latency_ms,
        {{ map_from_lists('hourly_totals.providers', 'hourly_totals.requests_per_row') }} as requests_by_provider,
        {{ map_from_lists('hourly_totals.models', 'hourly_totals.requests_per_row') }} as requests_by_model,
        cast(hourly_totals.unpriced_requests as bigint) as unpriced_requests,
        hour_sketches.latency_p50_ms,
        hour_sketches.latency_p95_ms,
        hour_sketches.latency_p99_ms,
        cast(hourly_totals.cached_tokens_input as bigint) as cached_tokens_input,
        cast(hourly_totals.cached_tokens_output as bigint) as cached_tokens_output,
        hour_sketches.latency_sketch,
        hourly_totals.latency_sum_ms,
        cast(hourly_totals.latency_count as bigint) as latency_count,
        cast(hourly_totals.tokens_cache_read as bigint) as tokens_cache_read,
        cast(hourly_totals.tokens_cache_write as bigint) as tokens_cache_write,
        cast(hourly_totals.tokens_reasoning as bigint) as tokens_reasoning,
        hourly_totals.prompt_cache_savings_usd,
        cast(hourly_totals.error_requests as bigint) as error_requests,
        {{ percent_of('hourly_totals.error_requests', 'hourly_totals.total_requests') }} as error_rate
    from hourly_totals
    {{ merged_sketch_join('hourly_totals.latency_sketches', 'hour_sketches') }}

)

select final.*{{ partition_date_column("final.hour_start") }}
from final
