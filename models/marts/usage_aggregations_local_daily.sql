{#
    Usage per project and local calendar day of the project's reporting zone (project_settings.time_zone,
    only for projects whose zone is not UTC), with the columns get_dashboard_stats returns
    (docs/contract.md, section 9): the dashboard reads a project's closed local days from here when
    it is called in the project's own zone, instead of adding up UTC days and hours on every call.
    Postgres only, like the dashboard and project_settings.

    A local day is its whole UTC hours (int_usage_hourly_by_model, one sketch per hour from
    usage_aggregations_hourly) and, where a local midnight falls inside an hour (zones at :30 and
    :45), that side of the hour from the requests. Every local day of every configured project that
    touches the rebuilt hours is rebuilt whole, with a row (zeros) even without traffic: the
    dashboard uses the stored days only when every day it needs is here in the zone it was asked
    for, and adds them up itself otherwise (a zone set or changed since; `watchllm-analytics
    rebuild` fills the history). Days whose hours or requests retention deleted are never rebuilt,
    so what was stored outlives them.
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
            "{{ lock_pending_rebuild('int_usage_hourly_by_model') }}",
        ],
        post_hook=["{{ clear_pending_rebuild(ref('int_usage_hourly_by_model'), 'hour_start', 'hour') }}"],
    )
}}

with configured_projects as (

    -- a zone Postgres does not know (the proxy fills this table) is skipped, not an error that
    -- would stop every project's build; the dashboard adds up that project's days
    select project_id, time_zone
    from {{ project_settings_relation() }}
    where time_zone <> 'UTC' and time_zone in (select name from pg_timezone_names)

),

rebuilt_hours as (

    -- the first and last hour this run rebuilds (a range, or what int_usage_hourly_by_model replaced)
    select min(hour_start) as first_hour, max(hour_start) as last_hour
    from {{ ref('int_usage_hourly_by_model') }}
    where {{ incremental_time_filter('hour_start', 'date', 'day', from_pending=true, retained='int_usage_hourly_by_model') }}

),

kept_history as (

    -- the first UTC day whose hourly aggregates are still there (retention deletes the oldest days)
    select {{ utc_midnight(utc_date('min(hour_start)')) }} as first_instant
    from {{ ref('int_usage_hourly_by_model') }}

),

local_calendar as (

    select
        projects.project_id,
        projects.time_zone,
        cast(local_day as date) as date
    from configured_projects as projects
    cross join rebuilt_hours
    cross join lateral generate_series(
        cast(rebuilt_hours.first_hour at time zone projects.time_zone as date),
        cast((rebuilt_hours.last_hour + {{ hours(1) }} - interval '1 microsecond') at time zone projects.time_zone as date),
        interval '1 day'
    ) as local_day

),

candidate_days as (

    -- a day's first and last instant (23 or 25 hours apart on daylight-saving days)
    select
        calendar.project_id,
        calendar.time_zone,
        calendar.date,
        cast(calendar.date as timestamp) at time zone calendar.time_zone as day_from,
        cast(calendar.date + 1 as timestamp) at time zone calendar.time_zone as day_to
    from local_calendar as calendar
    cross join kept_history
    where cast(calendar.date as timestamp) at time zone calendar.time_zone >= kept_history.first_instant

),

candidate_split_parts as (

    -- the side of an hour a local midnight splits that belongs to the day
    select
        project_id,
        date,
        {{ utc_hour('day_from') }} as split_hour,
        day_from as part_from,
        {{ utc_hour('day_from') }} + {{ hours(1) }} as part_to
    from candidate_days
    where day_from <> {{ utc_hour('day_from') }}

    union all

    select
        project_id,
        date,
        {{ utc_hour('day_to') }} as split_hour,
        {{ utc_hour('day_to') }} as part_from,
        day_to as part_to
    from candidate_days
    where day_to <> {{ utc_hour('day_to') }}

),

days_missing_requests as (

    -- a split hour with aggregates but not one request left, or before the raw retention watermark:
    -- retention deleted them, the day cannot be split (one index probe per split hour; `offset 0`
    -- keeps the probe on the index)
    select distinct parts.project_id, parts.date
    from candidate_split_parts as parts
    cross join lateral (
        select count(*) as requests
        from (
            select 1 from {{ ref('int_usage_logs_validated') }} as hour_requests
            where hour_requests.project_id = parts.project_id
                and hour_requests.created_at >= parts.split_hour
                and hour_requests.created_at < parts.split_hour + {{ hours(1) }}
            limit 1 offset 0
        ) as first_request
    ) as probe
    where
        (probe.requests = 0 or parts.split_hour < {{ retained_from('usage_logs') }})
        and exists (
            select 1 from {{ ref('int_usage_hourly_by_model') }} as hourly
            where hourly.project_id = parts.project_id and hourly.hour_start = parts.split_hour
        )

),

local_days as (

    select days.*
    from candidate_days as days
    left join days_missing_requests as missing
        on days.project_id = missing.project_id and days.date = missing.date
    where missing.project_id is null

),

split_hour_parts as (

    select parts.*
    from candidate_split_parts as parts
    inner join local_days as days on parts.project_id = days.project_id and parts.date = days.date

),

whole_hours as (

    -- one index range per day (lateral, and `offset 0` keeps it so: the planner expects ~1000
    -- calendar rows per project and would scan the whole table otherwise)
    select
        days.project_id,
        days.date,
        hourly.provider,
        hourly.model,
        {%- for column in hourly_sum_columns() %}
        {{ 'cast(null as jsonb) as latency_sketch' if column == 'latency_sketch' else 'hourly.' ~ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from local_days as days
    cross join lateral (
        select * from {{ ref('int_usage_hourly_by_model') }} as day_hours
        where
            day_hours.project_id = days.project_id
            and day_hours.hour_start >= days.day_from
            and day_hours.hour_start <= days.day_to - {{ hours(1) }}
        offset 0
    ) as hourly

),

whole_hour_sketches as (

    select days.project_id, days.date, hourly.latency_sketch
    from local_days as days
    cross join lateral (
        select day_hours.latency_sketch from {{ ref('usage_aggregations_hourly') }} as day_hours
        where
            day_hours.project_id = days.project_id
            and day_hours.hour_start >= days.day_from
            and day_hours.hour_start <= days.day_to - {{ hours(1) }}
            and day_hours.latency_sketch is not null
        offset 0
    ) as hourly

),

split_hour_requests as (

    -- one index range of the requests per part (`offset 0` keeps the planner from merging them
    -- into one scan of all the configured projects' rows)
    {{ aggregate_requests_by_hour(
        "(select part_requests.*, part.date as local_date from split_hour_parts as part"
        ~ " cross join lateral (select * from " ~ ref('int_usage_logs_validated') ~ " as hour_requests"
        ~ " where hour_requests.project_id = part.project_id"
        ~ " and hour_requests.created_at >= part.part_from"
        ~ " and hour_requests.created_at < part.part_to"
        ~ " offset 0) as part_requests) as split_requests",
        ref('stg_pricing__model_prices'),
        "true",
        group_by_logged_labels=true,
        extra_groups={'local_date': 'local_date'},
    ) | indent(4) }}

),

local_usage as (

    select * from whole_hours

    union all

    select
        project_id,
        local_date,
        provider,
        model,
        {{ hourly_sum_columns() | join(',\n        ') }}
    from split_hour_requests

),

local_sketches as (

    select project_id, date, latency_sketch from whole_hour_sketches

    union all

    select project_id, local_date, latency_sketch
    from split_hour_requests
    where latency_sketch is not null

),

{{ rollup_usage('local_usage', 'date', 'date', inline_input=false, sketch_rows='local_sketches', keep_sketch=false) }},

final as (

    select
        days.project_id,
        days.time_zone,
        days.date,
        coalesce(rolled_up.total_requests, 0) as total_requests,
        coalesce(rolled_up.cached_requests, 0) as cached_requests,
        rolled_up.cache_hit_rate,
        coalesce(rolled_up.tokens_input, 0) as tokens_input,
        coalesce(rolled_up.tokens_output, 0) as tokens_output,
        coalesce(rolled_up.total_tokens, 0) as total_tokens,
        rolled_up.total_cost_usd,
        rolled_up.total_potential_cost_usd,
        rolled_up.total_savings_usd,
        rolled_up.avg_latency_ms,
        coalesce(rolled_up.requests_by_provider, cast('{}' as jsonb)) as requests_by_provider,
        coalesce(rolled_up.requests_by_model, cast('{}' as jsonb)) as requests_by_model,
        coalesce(rolled_up.unpriced_requests, 0) as unpriced_requests,
        rolled_up.latency_p50_ms,
        rolled_up.latency_p95_ms,
        rolled_up.latency_p99_ms
    from local_days as days
    left join rolled_up on days.project_id = rolled_up.project_id and days.date = rolled_up.date

)

select * from final
