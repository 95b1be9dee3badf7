{#
    The pricing seed, one row per price period, service tier and side of the prompt-size threshold
    (docs/pricing.md), with names normalised like usage_logs' and exact numeric prices. A blank
    tier is `standard`; a blank `above_input_tokens` is 0, the side below any threshold. A class
    the row has no price for stays NULL here: int_model_prices_resolved applies the fallbacks.
#}

with source as (

    select * from {{ ref('model_pricing') }}

),

renamed as (

    select
        lower({{ trim_whitespace('provider') }}) as provider,
        lower({{ trim_whitespace('model') }}) as model,
        nullif({{ trim_whitespace('model_pattern') }}, '') as model_pattern,
        coalesce(nullif(lower({{ trim_whitespace('service_tier') }}), ''), 'standard') as service_tier,
        cast(coalesce(above_input_tokens, 0) as bigint) as above_input_tokens,
        cast(input_usd_per_1m as {{ money_type() }}) as input_usd_per_1m,
        cast(output_usd_per_1m as {{ money_type() }}) as output_usd_per_1m,
        cast(cache_read_usd_per_1m as {{ money_type() }}) as cache_read_usd_per_1m,
        cast(cache_write_usd_per_1m as {{ money_type() }}) as cache_write_usd_per_1m,
        cast(cache_write_1h_usd_per_1m as {{ money_type() }}) as cache_write_1h_usd_per_1m,
        cast(reasoning_usd_per_1m as {{ money_type() }}) as reasoning_usd_per_1m,
        cast(valid_from as date) as valid_from,
        cast(valid_to as date) as valid_to,
        source as price_source

    from source

)

select * from renamed
