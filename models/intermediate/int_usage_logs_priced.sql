{#
    Kept requests with their effective cost, potential cost and savings (contract section 4).
    A request is priced by the exact provider+model period containing its UTC date, else by the
    one provider pattern that matches its model. Unknown stays NULL and marks the row unpriced.
#}

with kept_requests as (

    select * from {{ ref('int_usage_logs_validated') }}
    where rejection_reason is null

),

model_prices as (

    select * from {{ ref('stg_pricing__model_prices') }}

),

pattern_prices as (

    select * from model_prices
    where model_pattern is not null

),

requests_dated as (

    select
        *,
        {{ utc_date('created_at') }} as usage_date
    from kept_requests

),

price_matched as (

    select
        requests_dated.*,
        coalesce(exact_price.input_usd_per_1m, pattern_price.input_usd_per_1m) as input_usd_per_1m,
        coalesce(exact_price.output_usd_per_1m, pattern_price.output_usd_per_1m) as output_usd_per_1m

    from requests_dated
    left join model_prices as exact_price
        on
            requests_dated.provider = exact_price.provider
            and requests_dated.model = exact_price.model
            and requests_dated.usage_date >= exact_price.valid_from
            and (exact_price.valid_to is null or requests_dated.usage_date < exact_price.valid_to)
    left join pattern_prices as pattern_price
        on
            exact_price.provider is null
            and requests_dated.provider = pattern_price.provider
            and {{ regex_matches('requests_dated.model', 'pattern_price.model_pattern') }}
            and requests_dated.usage_date >= pattern_price.valid_from
            and (pattern_price.valid_to is null or requests_dated.usage_date < pattern_price.valid_to)

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
