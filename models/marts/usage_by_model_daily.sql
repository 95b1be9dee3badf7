{#
    Usage per project, UTC date, provider and model (docs/contract.md, sections 5 and 8), rolled up
    from int_usage_hourly_by_model. usage_aggregations_daily rolls up from here (a tenth of the rows).
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
            {'columns': ['project_id', 'date', 'provider', 'model'], 'unique': true},
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

with hourly_by_model as (

    select * from {{ ref('int_usage_hourly_by_model') }}
    where {{ incremental_time_filter('hour_start', 'date', 'day', from_pending=true, retained='int_usage_hourly_by_model') }}

),

dated_hours as {{ not_materialized() }} (

    select
        *,
        {{ utc_date('hour_start') }} as date
    from hourly_by_model

),

daily_sums as (

    select
        project_id,
        date,
        provider,
        model,
        cast(sum(total_requests) as bigint) as total_requests,
        cast(sum(cached_requests) as bigint) as cached_requests,
        cast(sum(error_requests) as bigint) as error_requests,
        cast(sum(tokens_input) as bigint) as tokens_input,
        cast(sum(tokens_output) as bigint) as tokens_output,
        sum(total_cost_usd) as total_cost_usd,
        sum(total_potential_cost_usd) as total_potential_cost_usd,
        sum(total_savings_usd) as total_savings_usd,
        cast(sum(unpriced_requests) as bigint) as unpriced_requests,
        sum(latency_sum_ms) as latency_sum_ms,
        cast(sum(latency_count) as bigint) as latency_count,
        cast(sum(cached_tokens_input) as bigint) as cached_tokens_input,
        cast(sum(cached_tokens_output) as bigint) as cached_tokens_output,
        cast(sum(tokens_cache_read) as bigint) as tokens_cache_read,
        cast(sum(tokens_cache_write + tokens_cache_write_1h) as bigint) as tokens_cache_write,
        cast(sum(tokens_reasoning) as bigint) as tokens_reasoning,
        sum(prompt_cache_savings_usd) as prompt_cache_savings_usd,
        {{ sketch_list('latency_sketch') }} as latency_sketches
    from dated_hours
    group by project_id, date, provider, model

),

final as (

    select
        daily_sums.project_id,
        daily_sums.date,
        daily_sums.provider,
        daily_sums.model,
        daily_sums.total_requests,
        daily_sums.cached_requests,
        daily_sums.tokens_input,
        daily_sums.tokens_output,
        daily_sums.total_cost_usd,
        daily_sums.total_potential_cost_usd,
        daily_sums.total_savings_usd,
        daily_sums.unpriced_requests,
        daily_sums.latency_sum_ms,
        daily_sums.latency_count,
        daily_sums.cached_tokens_input,
        daily_sums.cached_tokens_output,
        model_day_sketches.latency_p50_ms,
        model_day_sketches.latency_p95_ms,
        model_day_sketches.latency_p99_ms,
        model_day_sketches.latency_sketch,
        daily_sums.tokens_cache_read,
        daily_sums.tokens_cache_write,
        daily_sums.tokens_reasoning,
        daily_sums.prompt_cache_savings_usd,
        daily_sums.error_requests,
        {{ percent_of('daily_sums.error_requests', 'daily_sums.total_requests') }} as error_rate
    from daily_sums
    {{ merged_sketch_join('daily_sums.latency_sketches', 'model_day_sketches') }}

)

select * from final
