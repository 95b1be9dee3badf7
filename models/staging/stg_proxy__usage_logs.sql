{#
    One row per usage_logs row, renamed and normalised (contract section 3, "Normalised").
    Nothing is filtered here: the verdict on bad rows is taken in int_usage_logs_validated.
#}

with source as (

    select * from {{ source('proxy', 'usage_logs') }}

),

renamed as (

    select
        id as request_id,
        project_id,
        created_at,
        coalesce(nullif(lower({{ trim_whitespace('provider') }}), ''), 'unknown') as provider,
        coalesce(nullif(lower({{ trim_whitespace('model') }}), ''), 'unknown') as model,
        coalesce(tokens_input, 0) as tokens_input,
        coalesce(tokens_output, 0) as tokens_output,
        cast(cost_usd as {{ money_type() }}) as recorded_cost_usd,
        cast(potential_cost_usd as {{ money_type() }}) as recorded_potential_cost_usd,
        coalesce(cached, false) as is_cached,
        case when latency_ms >= 0 then latency_ms end as latency_ms

    from source

)

select * from renamed
