{# The project settings as the models read them: a project's reporting zone (usage_aggregations_local_daily). Postgres only. #}

{{ config(enabled=(target.type == 'postgres')) }}

with source as (

    select * from {{ source('settings', 'project_settings') }}

),

renamed as (

    select
        project_id,
        time_zone,
        monthly_budget_usd,
        report_email_to,
        alert_email_to,
        hit_rate_drop_points,
        cost_spike_ratio,
        cost_spike_min_usd,
        latency_p95_ratio,
        updated_at
    from source

)

select * from renamed
