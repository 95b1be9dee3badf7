{#
    Every price the pricing rule can ask for (docs/contract.md, section 14): one row per price
    period, service tier (standard, batch, flex, priority) and side of the period's prompt-size
    threshold, with all six token classes priced. The seed states only what the provider lists;
    here a missing class falls back to its parent within the same tier and side (cache read and
    cache write -> input, 1-hour cache write -> cache write, reasoning -> output), then to the
    standard tier's price on the same side, then to the standard tier below the threshold.

    `above_input_tokens` is 0 for the side below the threshold (every request of a model without
    one) and the threshold itself for the side above it: a request whose tokens_input exceeds
    `threshold_input_tokens` is priced, all of it, by the row above.
#}
{#- indexed by what match_model_prices looks up: a join planned as a nested loop probes it per row -#}
{{
    config(
        materialized='table',
        meta={'read_by_every_tenant': true},
        indexes=[{'columns': ['provider', 'model', 'service_tier', 'above_input_tokens']}],
    )
}}

{#- each class and the classes it falls back to within one tier and side, nearest first -#}
{%- set fallback_chains = {
    'input_usd_per_1m': ['input_usd_per_1m'],
    'output_usd_per_1m': ['output_usd_per_1m'],
    'cache_read_usd_per_1m': ['cache_read_usd_per_1m', 'input_usd_per_1m'],
    'cache_write_usd_per_1m': ['cache_write_usd_per_1m', 'input_usd_per_1m'],
    'cache_write_1h_usd_per_1m': ['cache_write_1h_usd_per_1m', 'cache_write_usd_per_1m', 'input_usd_per_1m'],
    'reasoning_usd_per_1m': ['reasoning_usd_per_1m', 'output_usd_per_1m'],
} -%}

with model_prices as (

    select * from {{ ref('stg_pricing__model_prices') }}

),

periods as (

    -- a period is keyed by its standard price below the threshold, which every period has
    select
        provider,
        model,
        model_pattern,
        valid_from,
        valid_to,
        price_source
    from model_prices
    where service_tier = 'standard' and above_input_tokens = 0

),

period_thresholds as (

    select
        provider,
        model,
        coalesce(model_pattern, '') as pattern_key,
        valid_from,
        min(above_input_tokens) as threshold_input_tokens
    from model_prices
    where above_input_tokens > 0
    group by provider, model, coalesce(model_pattern, ''), valid_from

),

service_tiers as (

    select 'standard' as service_tier
    union all select 'batch'
    union all select 'flex'
    union all select 'priority'

),

sides as (

    select
        periods.*,
        period_thresholds.threshold_input_tokens,
        cast(0 as bigint) as above_input_tokens
    from periods
    left join period_thresholds
        on
            periods.provider = period_thresholds.provider
            and periods.model = period_thresholds.model
            and coalesce(periods.model_pattern, '') = period_thresholds.pattern_key
            and periods.valid_from = period_thresholds.valid_from

    union all

    select
        periods.*,
        period_thresholds.threshold_input_tokens,
        period_thresholds.threshold_input_tokens as above_input_tokens
    from periods
    inner join period_thresholds
        on
            periods.provider = period_thresholds.provider
            and periods.model = period_thresholds.model
            and coalesce(periods.model_pattern, '') = period_thresholds.pattern_key
            and periods.valid_from = period_thresholds.valid_from

),

price_grid as (

    select
        sides.*,
        service_tiers.service_tier
    from sides
    cross join service_tiers

),

resolved as (

    select
        price_grid.provider,
        price_grid.model,
        price_grid.model_pattern,
        price_grid.service_tier,
        price_grid.above_input_tokens,
        price_grid.threshold_input_tokens,
        {%- for class, chain in fallback_chains.items() %}
        coalesce(
            {%- for level in ['tier_side', 'standard_side', 'standard_below'] %}
            {%- set outer_loop = loop %}
            {%- for parent in chain %}
            {{ level }}.{{ parent }}{{ ',' if not (outer_loop.last and loop.last) }}
            {%- endfor %}
            {%- endfor %}
        ) as {{ class }},
        {%- endfor %}
        price_grid.valid_from,
        price_grid.valid_to,
        coalesce(tier_side.price_source, standard_side.price_source, price_grid.price_source) as price_source
    from price_grid
    {%- for level, tier, side in [
        ('tier_side', 'price_grid.service_tier', 'price_grid.above_input_tokens'),
        ('standard_side', "'standard'", 'price_grid.above_input_tokens'),
        ('standard_below', "'standard'", '0'),
    ] %}
    left join model_prices as {{ level }}
        on
            price_grid.provider = {{ level }}.provider
            and price_grid.model = {{ level }}.model
            and coalesce(price_grid.model_pattern, '') = coalesce({{ level }}.model_pattern, '')
            and price_grid.valid_from = {{ level }}.valid_from
            and {{ level }}.service_tier = {{ tier }}
            and {{ level }}.above_input_tokens = {{ side }}
    {%- endfor %}

)

select * from resolved
