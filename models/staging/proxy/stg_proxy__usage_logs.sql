{#
    One row per usage_logs row, renamed and normalised (docs/contract.md, section 3, "Normalised").
    Nothing is filtered here: the verdict on bad rows is taken in int_usage_logs_validated.

    The token classes and the service tier (section 14) are read where usage_logs has their
    columns; a class the table lacks counts 0 and a missing tier is standard. So are the key, end
    user, tags and status code (section 15): labels trimmed with their case kept, blank as NULL,
    tags as an array of distinct trimmed tags; a column the table lacks is NULL.
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
        model as logged_model,
        {{ attribution_label('api_key_id') if 'api_key_id' in logged_columns else 'cast(null as ' ~ text_type() ~ ')' }} as api_key_id,
        {{ attribution_label('end_user') if 'end_user' in logged_columns else 'cast(null as ' ~ text_type() ~ ')' }} as end_user,
        {%- if 'tags' in logged_columns %}
        {%- set tags_type = usage_log_column_type('tags') %}
        {{ normalised_tags('tags', tags_type) }} as tags,
        {{ tags_are_an_array('tags', tags_type) }} as tags_are_an_array,
        {%- else %}
        cast(null as {{ text_array_type() }}) as tags,
        true as tags_are_an_array,
        {%- endif %}
        {{ 'cast(status_code as integer)' if 'status_code' in logged_columns else 'cast(null as integer)' }} as status_code

    from source

)

select * from renamed
