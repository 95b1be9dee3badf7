{#
    Usage per project and UTC date (docs/contract.md, sections 5 and 8), rolled up from the sums,
    counts and sketches of usage_by_model_daily (which rolls up int_usage_hourly_by_model): the
    same roll-up as usage_aggregations_hourly at day grain, written out so each reads on its own.
#}

{{
    config(
        materialized=aggregate_materialization(),
        tags=['daily'],
        incremental_strategy=aggregate_incremental_strategy(),
        partition_by=aggregate_partition_by('date'),
        unique_key=['project_id', 'date'],
        bucket_column='date',
        marks_pending_rebuilds='day',
        full_refresh=false,
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['project_id', 'date'], 'unique': true},
            {'columns': ['date']},
        ],
        pre_hook=[
            "{{ lock_aggregates() }}",
            "{{ set_build_work_mem() }}",
            "{{ lock_pending_rebuild() }}",
        ],
        post_hook=["{{ clear_pending_rebuild() }}"],
    )
}}

with daily_by_model as (

    select * from {{ ref('usage_by_model_daily') }}
    where {{ incremental_time_filter('date', 'date', 'day', from_pending=true, on_date=true, retained='usage_by_model_daily') }}

),

daily_totals as (

    select
        project_id,
        date,
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
        sum(tokens_cache_write) as tokens_cache_write,
        sum(tokens_reasoning) as tokens_reasoning,
        sum(prompt_cache_savings_usd) as prompt_cache_savings_usd,
        {{ list_of('provider') }} as providers,
        {{ list_of('model') }} as models,
        {{ list_of('total_requests') }} as requests_per_row,
        {{ sketch_list('latency_sketch') }} as latency_sketches
    from daily_by_model
    group by project_id, date

),

final as (

    select
        daily_totals.project_id,
        daily_totals.date,
        cast(daily_totals.total_requests as bigint) as total_requests,
        cast(daily_totals.cached_requests as bigint) as cached_requests,
        {{ percent_of('daily_totals.cached_requests', 'daily_totals.total_requests') }} as cache_hit_rate,
        cast(daily_totals.tokens_input as bigint) as tokens_input,
        cast(daily_totals.tokens_output as bigint) as tokens_output,
        cast(daily_totals.tokens_input + daily_totals.tokens_output as bigint) as total_tokens,
        daily_totals.total_cost_usd,
        daily_totals.total_potential_cost_usd,
        daily_totals.total_savings_usd,
        {{ ratio_2dp('daily_totals.latency_sum_ms', 'daily_totals.latency_count') }} as avg_latency_ms,
        {{ map_from_lists('daily_totals.providers', 'daily_totals.requests_per_row') }} as requests_by_provider,
        {{ map_from_lists('daily_totals.models', 'daily_totals.requests_per_row') }} as requests_by_model,
        cast(daily_totals.unpriced_requests as bigint) as unpriced_requests,
        day_sketches.latency_p50_ms,
        day_sketches.latency_p95_ms,
        day_sketches.latency_p99_ms,
        cast(daily_totals.cached_tokens_input as bigint) as cached_tokens_input,
        cast(daily_totals.cached_tokens_output as bigint) as cached_tokens_output,
        day_sketches.latency_sketch,
        daily_totals.latency_sum_ms,
        cast(daily_totals.latency_count as bigint) as latency_count,
        cast(daily_totals.tokens_cache_read as bigint) as tokens_cache_read,
        cast(daily_totals.tokens_cache_write as bigint) as tokens_cache_write,
        cast(daily_totals.tokens_reasoning as bigint) as tokens_reasoning,
        daily_totals.prompt_cache_savings_usd,
        cast(daily_totals.error_requests as bigint) as error_requests,
        {{ percent_of('daily_totals.error_requests', 'daily_totals.total_requests') }} as error_rate
    from daily_totals
    {{ merged_sketch_join('daily_totals.latency_sketches', 'day_sketches') }}

)

select * from final
