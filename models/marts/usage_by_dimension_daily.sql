{#
    Usage per project, UTC date, dimension (api_key, end_user, tag) and value (docs/contract.md,
    section 15), rolled up from int_usage_hourly_by_dimension. A request counts once under each of
    its distinct tags, so a day's tag rows do not add up to the project's total: nothing sums them
    into one. Its key and end-user rows do.
#}

{{
    config(
        materialized=aggregate_materialization(),
        tags=['daily'],
        incremental_strategy=aggregate_incremental_strategy(),
        partition_by=aggregate_partition_by('date'),
        unique_key=['project_id', 'date'],
        bucket_column='date',
        full_refresh=false,
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['project_id', 'date', 'dimension', 'value'], 'unique': true},
            {'columns': ['project_id', 'dimension', 'date']},
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

with hourly_by_dimension as (

    select * from {{ ref('int_usage_hourly_by_dimension') }}
    where {{ incremental_time_filter('hour_start', 'date', 'day', from_pending=true, retained='int_usage_hourly_by_dimension') }}

),

dated_hours as {{ not_materialized() }} (

    select
        *,
        {{ utc_date('hour_start') }} as date
    from hourly_by_dimension

),

daily_sums as (

    select
        project_id,
        date,
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
        sum(cached_tokens_input) as cached_tokens_input,
        sum(cached_tokens_output) as cached_tokens_output,
        sum(tokens_cache_read) as tokens_cache_read,
        sum(tokens_cache_write) as tokens_cache_write,
        sum(tokens_reasoning) as tokens_reasoning,
        sum(prompt_cache_savings_usd) as prompt_cache_savings_usd,
        {{ sketch_list('latency_sketch') }} as latency_sketches
    from dated_hours
    group by project_id, date, dimension, value

),

final as (

    select
        daily_sums.project_id,
        daily_sums.date,
        daily_sums.dimension,
        daily_sums.value,
        cast(daily_sums.total_requests as bigint) as total_requests,
        cast(daily_sums.cached_requests as bigint) as cached_requests,
        {{ percent_of('daily_sums.cached_requests', 'daily_sums.total_requests') }} as cache_hit_rate,
        cast(daily_sums.tokens_input as bigint) as tokens_input,
        cast(daily_sums.tokens_output as bigint) as tokens_output,
        daily_sums.total_cost_usd,
        daily_sums.total_potential_cost_usd,
        daily_sums.total_savings_usd,
        cast(daily_sums.unpriced_requests as bigint) as unpriced_requests,
        daily_sums.latency_sum_ms,
        cast(daily_sums.latency_count as bigint) as latency_count,
        cast(daily_sums.cached_tokens_input as bigint) as cached_tokens_input,
        cast(daily_sums.cached_tokens_output as bigint) as cached_tokens_output,
        value_day_sketches.latency_p50_ms,
        value_day_sketches.latency_p95_ms,
        value_day_sketches.latency_p99_ms,
        value_day_sketches.latency_sketch,
        cast(daily_sums.tokens_cache_read as bigint) as tokens_cache_read,
        cast(daily_sums.tokens_cache_write as bigint) as tokens_cache_write,
        cast(daily_sums.tokens_reasoning as bigint) as tokens_reasoning,
        daily_sums.prompt_cache_savings_usd,
        cast(daily_sums.error_requests as bigint) as error_requests,
        {{ percent_of('daily_sums.error_requests', 'daily_sums.total_requests') }} as error_rate
    from daily_sums
    {{ merged_sketch_join('daily_sums.latency_sketches', 'value_day_sketches') }}

)

select * from final
