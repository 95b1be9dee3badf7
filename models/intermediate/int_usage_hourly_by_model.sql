{#
    The one pass over raw requests: additive sums and counts per project, UTC hour, provider and
    model, priced per group (docs/contract.md, sections 4, 5 and 8). Every mart rolls up from here,
    so no mart rescans usage_logs for history. Incremental: replaces whole (project_id, hour_start)
    buckets inside the rebuild window.

    A price is constant for a provider, model, UTC date, service tier and side of the model's
    prompt-size threshold, so a group's list price is the price times its token sums of each
    pricing case (exact in numeric): the pass needs no price join per request. Where usage_logs has
    token classes (section 14) a group is also one service tier and prompt band, and each class is
    summed and priced on its own; without them every group is the standard tier's band 0. The latency sketch {key: requests} of a group is built in the same grouping, from each
    request's key and the count of its group's requests with that key (equal keys come with equal
    counts, and the map keeps one of them).

    Rows are written in hour order: the marts read the newest hours back, and in hour order those
    rows sit on a few pages instead of all over the table.
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
        records_test_window=true,
        full_refresh=false,
        create_in_parallel=true,
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['project_id', 'hour_start', 'provider', 'model', 'service_tier', 'prompt_band'], 'unique': true},
            {'columns': ['hour_start']},
        ],
        pre_hook=[
            "{{ lock_aggregates() }}",
            "{{ set_build_work_mem() }}",
            "{{ record_batch_test_window('hour_start', 'hour') }}",
        ],
        post_hook=["{{ record_newest_bucket('hour_start') }}"],
    )
}}

{%- set has_token_classes = usage_logs_have_token_classes() %}

with classified_requests as (

    select * from {{ ref('int_usage_logs_classified') }}
    where {{ incremental_time_filter('created_at', 'hour_start', 'hour', retained='usage_logs') }}

),

keyed_requests as (

    select
        *
        {%- if var('latency_sketches', true) %},
        count(*) over (
            partition by project_id, hour_start, provider, model, service_tier, prompt_band, latency_key
        ) as latency_key_requests
        {%- endif %}
    from classified_requests

),

hourly_sums as (

    select
        project_id,
        hour_start,
        usage_date,
        provider,
        model,
        service_tier,
        prompt_band,
        {{ pricing_case_sums(has_token_classes) | indent(8) }},
        {#- var latency_sketches: false builds no sketch (the benchmark's baseline for what they cost) #}
        {{ sketch_from_row_key_counts('latency_key', 'latency_key_requests') if var('latency_sketches', true)
            else 'cast(null as ' ~ sketch_type() ~ ')' }} as latency_sketch
    from keyed_requests
    group by project_id, hour_start, usage_date, provider, model, service_tier, prompt_band

),

price_matched as (

    {{ match_model_prices('hourly_sums', 'usage_date', ref('int_model_prices_resolved'),
        service_tier='service_tier' if has_token_classes else none,
        prompt_band='prompt_band' if has_token_classes else none) | indent(4) }}

),

priced as (

    select
        *,
        {{ priced_totals(has_token_classes) | indent(8) }}
    from price_matched

),

final as (

    select
        project_id,
        hour_start,
        provider,
        model,
        cast(total_requests as bigint) as total_requests,
        cast(cached_requests as bigint) as cached_requests,
        cast(tokens_input as {{ count_sum_type() }}) as tokens_input,
        cast(tokens_output as {{ count_sum_type() }}) as tokens_output,
        total_cost_usd,
        total_potential_cost_usd,
        total_savings_usd,
        cast(unpriced_requests as bigint) as unpriced_requests,
        cast(latency_sum_ms as {{ count_sum_type() }}) as latency_sum_ms,
        cast(latency_count as bigint) as latency_count,
        cast(coalesce(cached_tokens_input, 0) as {{ count_sum_type() }}) as cached_tokens_input,
        cast(coalesce(cached_tokens_output, 0) as {{ count_sum_type() }}) as cached_tokens_output,
        latency_sketch,
        service_tier,
        prompt_band,
        {%- for column in token_class_columns() %}
        cast({{ column if has_token_classes else 0 }} as {{ count_sum_type() }}) as {{ column }},
        cast({{ 'coalesce(cached_' ~ column ~ ', 0)' if has_token_classes else 0 }} as {{ count_sum_type() }}) as cached_{{ column }},
        {%- endfor %}
        prompt_cache_savings_usd,
        cast(error_requests as bigint) as error_requests
    from priced

)

select final.*{{ partition_date_column("final.hour_start") }}
from final
order by hour_start
