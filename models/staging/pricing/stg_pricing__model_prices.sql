{# The pricing seed, one row per price period, with names normalised like usage_logs'. #}

with source as (

    select * from {{ ref('model_pricing') }}

),

renamed as (

    select
        lower({{ trim_whitespace('provider') }}) as provider,
        lower({{ trim_whitespace('model') }}) as model,
        nullif({{ trim_whitespace('model_pattern') }}, '') as model_pattern,
        cast(input_usd_per_1m as {{ money_type() }}) as input_usd_per_1m,
        cast(output_usd_per_1m as {{ money_type() }}) as output_usd_per_1m,
        cast(valid_from as date) as valid_from,
        cast(valid_to as date) as valid_to,
        source as price_source

    from source

)

select * from renamed
