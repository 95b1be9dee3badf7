{#
    Kept requests with what every aggregation of them needs: the UTC hour and date, the latency
    sketch key (docs/contract.md, section 8), and the pricing case section 4 gives the row, so that
    a price is applied once per group to the token sums of each case, not once per request:
      recorded    - not cached with a recorded cost, or cached with a recorded potential > 0:
                    cost and potential as recorded
      list        - not cached without a recorded cost: cost = potential = the list price
      cached_list - cached without a recorded potential: cost as recorded (or 0), potential = the
                    list price
    The hourly pass groups these rows per project, hour, provider, model, service tier and prompt
    band; the local days (int_usage_local_days) group the newest ones and those of hours a local
    midnight splits. Without token classes in usage_logs, every row is the standard tier's band 0.
    The key, end user and tags (NULL without their columns) feed int_usage_hourly_by_dimension.
#}

{%- set has_token_classes = usage_logs_have_token_classes() %}
{%- set model_prices = ref('int_model_prices_resolved') %}

with kept_requests as (

    select * from {{ ref('int_usage_logs_validated') }}
    where is_kept

),

classified as (

    select
        request_id,
        project_id,
        created_at,
        {{ utc_hour('created_at') }} as hour_start,
        {{ utc_date('created_at') }} as usage_date,
        provider,
        model,
        logged_provider,
        logged_model,
        is_cached,
        tokens_input,
        tokens_output,
        {%- for column in token_class_columns() %}
        {{ column }},
        {%- endfor %}
        service_tier,
        {#- the prompt-size band decides which side of a model's threshold prices the request #}
        cast({{ prompt_band('tokens_input', model_prices) if has_token_classes else 0 }} as bigint) as prompt_band,
        latency_ms,
        {#- var latency_sketches: false builds no sketch (the benchmark's baseline for what they cost) #}
        {{ latency_sketch_key('latency_ms') if var('latency_sketches', true) else 'cast(null as integer)' }}
            as latency_key,
        recorded_cost_usd,
        recorded_potential_cost_usd,
        api_key_id,
        end_user,
        tags,
        {#- an error is a kept request the proxy answered with an HTTP status of 400 or more (section 15) #}
        {{ 'coalesce(status_code >= 400, false)' if usage_logs_have_status_code() else 'false' }} as is_error,
        (not is_cached and recorded_cost_usd is null) as is_list_priced,
        (is_cached and not coalesce(recorded_potential_cost_usd > 0, false)) as is_cached_list_priced,
        (
            (is_cached or recorded_cost_usd is not null)
            and not (is_cached and not coalesce(recorded_potential_cost_usd > 0, false))
        ) as is_recorded_priced
    from kept_requests

)

select * from classified
