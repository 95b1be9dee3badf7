{#
    Kept requests with their effective cost, potential cost and savings (docs/contract.md, section 4).
    The price comes from macros/pricing/match_model_prices.sql, by token class, service tier and
    prompt band where usage_logs has classes (section 14); unknown stays NULL and marks the row
    unpriced. int_usage_hourly_by_model applies the same rules to hourly sums instead of rows.
#}

{%- set has_token_classes = usage_logs_have_token_classes() %}
{%- set model_prices = ref('int_model_prices_resolved') %}

with kept_requests as (

    select * from {{ ref('int_usage_logs_validated') }}
    where is_kept

),

requests_dated as (

    select
        *,
        {{ utc_date('created_at') }} as usage_date
        {%- if has_token_classes %},
        cast({{ prompt_band('tokens_input', model_prices) }} as bigint) as prompt_band
        {%- endif %}
    from kept_requests

),

price_matched as (

    {{ match_model_prices('requests_dated', 'usage_date', model_prices,
        service_tier='service_tier' if has_token_classes else none,
        prompt_band='prompt_band' if has_token_classes else none) }}

),

list_priced as (

    select
        *,
        {{ list_price_of_tokens('', has_token_classes) }} as list_price_usd
    from price_matched

),

effective as (

    select
        *,
        case
            when is_cached then coalesce(recorded_cost_usd, 0)
            else coalesce(recorded_cost_usd, list_price_usd)
        end as cost_usd
    from list_priced

),

with_potential as (

    select
        *,
        case
            when not is_cached then cost_usd
            when recorded_potential_cost_usd > 0 then recorded_potential_cost_usd
            else list_price_usd
        end as potential_cost_usd
    from effective

),

final as (

    select
        request_id,
        project_id,
        created_at,
        usage_date,
        provider,
        model,
        tokens_input,
        tokens_output,
        is_cached,
        latency_ms,
        list_price_usd,
        cost_usd,
        potential_cost_usd,
        potential_cost_usd - cost_usd as savings_usd,
        (cost_usd is null or potential_cost_usd is null) as is_unpriced
    from with_potential

)

select * from final
