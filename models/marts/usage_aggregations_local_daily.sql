{#
    Usage per project and local calendar day of the project's reporting zone (project_settings.time_zone,
    only for projects whose zone is not UTC), with the columns get_dashboard_stats returns
    (docs/contract.md, section 9): the dashboard reads a project's closed local days from here when
    it is called in the project's own zone, instead of adding them up on every call. Postgres only,
    like the dashboard and project_settings.

    A local day is what int_usage_local_days makes of it, the same definition the dashboard uses for
    every other day. Every local day of every configured project that touches the rebuilt hours is
    rebuilt whole, with a row (zeros) even without traffic: the dashboard uses the stored days only
    when every day it needs is here in the zone it was asked for (a zone set or changed since is
    added up; `watchllm-analytics rebuild` fills the history). A day whose hourly aggregates or
    split-hour requests retention deleted is never rebuilt, so what was stored outlives them.
#}

{{
    config(
        enabled=(target.type == 'postgres'),
        materialized=aggregate_materialization(),
        tags=['daily'],
        incremental_strategy=aggregate_incremental_strategy(),
        unique_key=['project_id', 'date'],
        bucket_column='date',
        full_refresh=false,
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['project_id', 'date'], 'unique': true},
            {'columns': ['date']},
        ],
        pre_hook=[
            "{{ lock_aggregates() }}",
            "{{ set_build_work_mem() }}",
            "{{ lock_pending_rebuild() }}",
        ],
        post_hook=["{{ clear_pending_rebuild() }}"],
    )
}}

with configured_projects as (

    -- a zone Postgres does not know (the proxy fills this table) is skipped, not an error that
    -- would stop every project's build; the dashboard adds up that project's days
    select project_id, time_zone
    from {{ ref('stg_settings__project_settings') }}
    where time_zone <> 'UTC' and time_zone in (select name from pg_timezone_names)

),

rebuilt_hours as (

    -- the first and last hour this run rebuilds (a range, or what int_usage_hourly_by_model replaced)
    select min(hour_start) as first_hour, max(hour_start) as last_hour
    from {{ ref('int_usage_hourly_by_model') }}
    where {{ incremental_time_filter('hour_start', 'date', 'day', from_pending=true, retained='int_usage_hourly_by_model') }}

),

candidate_days as (

    select
        projects.project_id,
        projects.time_zone,
        local_days.date,
        cast(local_days.date as timestamp) at time zone projects.time_zone as day_from,
        cast(local_days.date + 1 as timestamp) at time zone projects.time_zone as day_to
    from configured_projects as projects
    cross join rebuilt_hours
    cross join lateral (
        select cast(rebuilt_hours.first_hour at time zone projects.time_zone as date) + day_offset as date
        from generate_series(
            0,
            cast((rebuilt_hours.last_hour + {{ hours(1) }} - interval '1 microsecond') at time zone projects.time_zone as date)
            - cast(rebuilt_hours.first_hour at time zone projects.time_zone as date)
        ) as day_offset
    ) as local_days

),

days_missing_pieces as (

    -- a day whose hourly aggregates retention deleted, or one of whose split hours has aggregates
    -- but its requests are gone (before the raw watermark, or not one left): it cannot be exact
    select days.project_id, days.date
    from candidate_days as days
    where days.day_from < {{ retained_from('usage_aggregations_hourly') }}

    union

    select days.project_id, days.date
    from candidate_days as days
    cross join lateral (
        select {{ utc_hour('days.day_from') }} as hour_start where days.day_from <> {{ utc_hour('days.day_from') }}
        union all
        select {{ utc_hour('days.day_to') }} where days.day_to <> {{ utc_hour('days.day_to') }}
    ) as split
    where
        exists (
            select 1 from {{ ref('usage_aggregations_hourly') }} as hourly
            where hourly.project_id = days.project_id and hourly.hour_start = split.hour_start
        )
        and (
            split.hour_start < {{ retained_from('usage_logs') }}
            or not exists (
                select 1 from {{ ref('int_usage_logs_classified') }} as logged
                where logged.project_id = days.project_id
                    and logged.created_at >= split.hour_start
                    and logged.created_at < split.hour_start + {{ hours(1) }}
            )
        )

),

project_ranges as (

    select project_id, time_zone, min(date) as first_day, max(date) as last_day
    from candidate_days
    group by project_id, time_zone

),

added_up as (

    -- every hour from usage_aggregations_hourly: these days are closed or will be rebuilt again
    select ranges.project_id, ranges.time_zone, local_usage.*
    from project_ranges as ranges
    cross join lateral {{ ref('int_usage_local_days') }}(
        ranges.project_id, ranges.time_zone, ranges.first_day, ranges.last_day, 'infinity'
    ) as local_usage

),

final as (

    select
        days.project_id,
        days.time_zone,
        days.date,
        coalesce(added_up.total_requests, 0) as total_requests,
        coalesce(added_up.cached_requests, 0) as cached_requests,
        {{ percent_of('added_up.cached_requests', 'added_up.total_requests') }} as cache_hit_rate,
        coalesce(added_up.tokens_input, 0) as tokens_input,
        coalesce(added_up.tokens_output, 0) as tokens_output,
        coalesce(added_up.tokens_input + added_up.tokens_output, 0) as total_tokens,
        added_up.total_cost_usd,
        added_up.total_potential_cost_usd,
        added_up.total_savings_usd,
        {{ ratio_2dp('added_up.latency_sum_ms', 'added_up.latency_count') }} as avg_latency_ms,
        coalesce(added_up.requests_by_provider, cast('{}' as jsonb)) as requests_by_provider,
        coalesce(added_up.requests_by_model, cast('{}' as jsonb)) as requests_by_model,
        coalesce(added_up.unpriced_requests, 0) as unpriced_requests,
        added_up.latency_p50_ms,
        added_up.latency_p95_ms,
        added_up.latency_p99_ms,
        coalesce(added_up.tokens_cache_read, 0) as tokens_cache_read,
        coalesce(added_up.tokens_cache_write, 0) as tokens_cache_write,
        coalesce(added_up.tokens_reasoning, 0) as tokens_reasoning,
        added_up.prompt_cache_savings_usd,
        coalesce(added_up.error_requests, 0) as error_requests,
        {{ percent_of('added_up.error_requests', 'added_up.total_requests') }} as error_rate
    from candidate_days as days
    left join days_missing_pieces as missing
        on days.project_id = missing.project_id and days.date = missing.date
    left join added_up
        on days.project_id = added_up.project_id and days.date = added_up.date
    where missing.project_id is null

)

select * from final
