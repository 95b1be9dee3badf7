{#
    Error: a model with no exact price row may be matched by at most one model_pattern of its
    provider on a given date (else a request would be priced twice). Checks the models seen in
    the test window and every model the seed names.
#}
{{ config(severity='error', tags=['deep_check'], meta={'dagster': {'ref': {'name': 'int_model_prices_resolved'}}}) }}

with recent_models as (

    select distinct provider, model, {{ utc_date('created_at') }} as usage_date
    from {{ ref('int_usage_logs_validated') }}
    where
        is_kept
        and {{ in_test_window('created_at', source('proxy', 'usage_logs')) }}

),

seed_models as (

    select distinct provider, model, valid_from as usage_date
    from {{ ref('int_model_prices_resolved') }}

),

candidates as (

    select * from recent_models
    union
    select * from seed_models

),

prices as (

    -- one row per price period
    select * from {{ ref('int_model_prices_resolved') }}
    where service_tier = 'standard' and above_input_tokens = 0

),

unmatched as (

    select candidates.*
    from candidates
    where not exists (
        select 1 from prices
        where
            prices.provider = candidates.provider
            and prices.model = candidates.model
            and candidates.usage_date >= prices.valid_from
            and (prices.valid_to is null or candidates.usage_date < prices.valid_to)
    )

)

select unmatched.provider, unmatched.model, unmatched.usage_date, count(*) as matching_patterns
from unmatched
inner join prices
    on
        prices.provider = unmatched.provider
        and prices.model_pattern is not null
        and {{ regex_matches('unmatched.model', 'prices.model_pattern') }}
        and unmatched.usage_date >= prices.valid_from
        and (prices.valid_to is null or unmatched.usage_date < prices.valid_to)
group by unmatched.provider, unmatched.model, unmatched.usage_date
having count(*) > 1
