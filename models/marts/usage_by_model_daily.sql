{# Usage per project, UTC date, provider and model (docs/contract.md, section 5). #}

{{
    config(
        materialized='incremental',
        tags=['daily'],
        incremental_strategy='bucket_replace',
        unique_key=['project_id', 'date'],
        bucket_column='date',
        full_refresh=false,
        on_schema_change='fail',
        indexes=[
            {'columns': ['project_id', 'date', 'provider', 'model'], 'unique': true},
            {'columns': ['date']},
        ],
        pre_hook=[
            "{{ lock_aggregates() }}",
            "{{ set_build_work_mem() }}",
            "{{ lock_pending_rebuild('int_usage_hourly_by_model') }}",
        ],
        post_hook=["{{ clear_pending_rebuild(ref('int_usage_hourly_by_model'), 'hour_start', 'hour') }}"],
    )
}}

with hourly_by_model as (

    select * from {{ ref('int_usage_hourly_by_model') }}
    where {{ incremental_time_filter('hour_start', 'date', 'day', from_pending=true) }}

),

daily_by_model as (

    select
        project_id,
        {{ utc_date('hour_start') }} as date,
        provider,
        model,
        cast(sum(total_requests) as bigint) as total_requests,
        cast(sum(cached_requests) as bigint) as cached_requests,
        cast(sum(tokens_input) as bigint) as tokens_input,
        cast(sum(tokens_output) as bigint) as tokens_output,
        sum(total_cost_usd) as total_cost_usd,
        sum(total_potential_cost_usd) as total_potential_cost_usd,
        sum(total_savings_usd) as total_savings_usd,
        cast(sum(unpriced_requests) as bigint) as unpriced_requests
    from hourly_by_model
    group by project_id, {{ utc_date('hour_start') }}, provider, model

)

select * from daily_by_model
