{#
    One row per usage_logs row, renamed and normalised (docs/contract.md, section 3, "Normalised").
    Nothing is filtered here: the verdict on bad rows is taken in int_usage_logs_validated.

    The token classes and the service tier (section 14) are read where usage_logs has their
    columns; a class the table lacks counts 0 and a missing tier is standard.
#}

{%- set logged_columns = usage_log_columns() %}

with source as (

    select * from {{ source('proxy', 'usage_logs') }}

),

renamed as (

    select
        id as request_id,
        project_id,
        created_at,
        {{ normalised_label('provider') }} as provider,
        {{ normalised_label('model') }} as model,
        coalesce(tokens_input, 0) as tokens_input,
        coalesce(tokens_output, 0) as tokens_output,
        {%- for column in token_class_columns() %}
        {{ 'coalesce(' ~ column ~ ', 0)' if column in logged_columns else 'cast(0 as integer)' }} as {{ column }},
        {%- endfor %}
        {{ normalised_service_tier('service_tier') if 'service_tier' in logged_columns else "'standard'" }} as service_tier,
        cast(cost_usd as {{ money_type() }}) as recorded_cost_usd,
        cast(potential_cost_usd as {{ money_type() }}) as recorded_potential_cost_usd,
        coalesce(cached, false) as is_cached,
        case when latency_ms >= 0 then latency_ms end as latency_ms,
        provider as logged_provider,
        model as logged_model

    from source

)

select * from renamed
