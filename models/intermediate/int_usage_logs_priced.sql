{#
    Kept requests with their effective cost, potential cost and savings (docs/contract.md, section 4).
    The price comes from macros/pricing/match_model_prices.sql; unknown stays NULL and marks the row
    unpriced. int_usage_hourly_by_model applies the same rules to hourly sums instead of rows.
#}

with kept_requests as (

    select * from {{ ref('int_usage_logs_validated') }}
    where is_kept

),

requests_dated as (

    select
        *,
        {{ utc_date('created_at') }} as usage_date
    from kept_requests

),

price_matched as (

    {{ match_model_prices('requests_dated', 'usage_date', ref('int_model_prices_resolved')) }}

),

list_priced as (

    select
        *,
        {{ usd_for_tokens('tokens_input', 'input_usd_per_1m') }}
        + {{ usd_for_tokens('tokens_output', 'output_usd_per_1m') }} as list_price_usd
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
