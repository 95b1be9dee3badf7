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
        cast(sum(tokens_input) as bigint) as tokens_input,
        cast(sum(tokens_output) as bigint) as tokens_output,
        sum(total_cost_usd) as total_cost_usd,
        sum(total_potential_cost_usd) as total_potential_cost_usd,
        sum(total_savings_usd) as total_savings_usd,
        cast(sum(unpriced_requests) as bigint) as unpriced_requests,
        sum(latency_sum_ms) as latency_sum_ms,
        cast(sum(latency_count) as bigint) as latency_count,
        cast(sum(cached_tokens_input) as bigint) as cached_tokens_input,
        cast(sum(cached_tokens_output) as bigint) as cached_tokens_output
        {{- sketch_list_column() }}
    from dated_hours
    group by project_id, date, provider, model

),
{%- if not aggregates_from_group_lists() %}

{{ merge_latency_sketches('dated_hours', ['project_id', 'date', 'provider', 'model'], 'model_day') }}
{%- endif %}

final as (

    select
        {%- for column in [
            'project_id', 'date', 'provider', 'model', 'total_requests', 'cached_requests', 'tokens_input',
            'tokens_output', 'total_cost_usd', 'total_potential_cost_usd', 'total_savings_usd', 'unpriced_requests',
            'latency_sum_ms', 'latency_count', 'cached_tokens_input', 'cached_tokens_output',
        ] %}
        daily_sums.{{ column }},
        {%- endfor %}
        model_day_sketches.latency_p50_ms,
        model_day_sketches.latency_p95_ms,
        model_day_sketches.latency_p99_ms,
        model_day_sketches.latency_sketch
    from daily_sums
    {{ join_merged_sketches('model_day', 'daily_sums', ['project_id', 'date', 'provider', 'model']) }}

)

select * from final
