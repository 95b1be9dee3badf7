{#
    The one pass over raw requests: additive sums and counts per project, UTC hour, provider and
    model. Every mart rolls up from here, so no mart rescans usage_logs for history.
    Incremental: replaces whole (project_id, hour_start) buckets inside the rebuild window.
#}

{{
    config(
        materialized='incremental',
        incremental_strategy='bucket_replace',
        unique_key=['project_id', 'hour_start'],
        bucket_column='hour_start',
        full_refresh=false,
        on_schema_change='fail',
        indexes=[
            {'columns': ['project_id', 'hour_start', 'provider', 'model'], 'unique': true},
            {'columns': ['hour_start']},
        ],
        pre_hook=[lock_aggregates()],
    )
}}

with priced_requests as (

    select * from {{ ref('int_usage_logs_priced') }}
    where {{ incremental_time_filter('created_at', 'hour_start', 'hour') }}

),

bucketed as (

    select
        *,
        {{ utc_hour('created_at') }} as hour_start
    from priced_requests

),

aggregated as (

    select
        project_id,
        hour_start,
        provider,
        model,
        count(*) as total_requests,
        {{ count_if('is_cached') }} as cached_requests,
        sum(cast(tokens_input as bigint)) as tokens_input,
        sum(cast(tokens_output as bigint)) as tokens_output,
        sum(cost_usd) as total_cost_usd,
        sum(potential_cost_usd) as total_potential_cost_usd,
        sum(savings_usd) as total_savings_usd,
        {{ count_if('is_unpriced') }} as unpriced_requests,
        sum(cast(latency_ms as bigint)) as latency_sum_ms,
        count(latency_ms) as latency_count
    from bucketed
    group by project_id, hour_start, provider, model

)

select * from aggregated
