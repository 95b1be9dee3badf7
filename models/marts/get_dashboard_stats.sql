{#
    The dashboard function (docs/contract.md, sections 6, 8, 9 and 16):
    get_dashboard_stats(p_project_id, p_days, p_time_zone default 'UTC'), one row per calendar day of
    p_time_zone, oldest first, zero-filled.

    - Days read stored: the closed UTC days from usage_aggregations_daily, or, in the project's own
      reporting zone, its closed local days from usage_aggregations_local_daily (when every one of
      them is stored).
    - Every other day from int_usage_local_days: whole hours from usage_aggregations_hourly, and the
      requests of split hours and of the open tail (from the newest built hour minus the lookback:
      what the next build still rebuilds), so a figure does not change when a build catches up.

    Its statements are planned once per session (plan_cache_mode force_generic_plan): planning the
    main query costs more than running it. Its bounds are lookups, never scans of another project's rows: the newest built hour comes
    from watchllm_table_bounds, and a caller who may not see the project (row level security)
    finds none of its hours or requests and gets zero-filled days after a few index probes.
#}

{{
    config(
        materialized='sql_function',
        schema=env_var('WATCHLLM_API_SCHEMA', 'public'),
        arguments="p_project_id uuid, p_days integer, p_time_zone text default 'UTC'",
        argument_types='uuid, integer, text',
        replaces_argument_types=['uuid, integer'],
        settings={'plan_cache_mode': 'force_generic_plan'},
        returns="""table (
            date date,
            total_requests bigint,
            cached_requests bigint,
            cache_hit_rate numeric,
            total_tokens bigint,
            total_cost_usd numeric,
            total_potential_cost_usd numeric,
            total_savings_usd numeric,
            avg_latency_ms numeric,
            requests_by_provider jsonb,
            requests_by_model jsonb,
            latency_p50_ms numeric,
            latency_p95_ms numeric,
            latency_p99_ms numeric,
            tokens_cache_read bigint,
            tokens_cache_write bigint,
            tokens_reasoning bigint,
            prompt_cache_savings_usd numeric,
            error_requests bigint,
            error_rate numeric
        )""",
    )
}}
{#- usage_aggregations_local_daily is built on Postgres only; on Spark this function builds nothing -#}
{%- set local_daily = ref('usage_aggregations_local_daily') if target.type == 'postgres' else none %}

#variable_conflict use_column
declare
    v_today date;
    v_first_day date;
    v_from timestamptz;
    v_to timestamptz;
    v_open_from timestamptz;
    v_stored_to date;
    v_hours_kept_from timestamptz;
    v_split_hour timestamptz;
begin
    {{ rpc_argument_checks('get_dashboard_stats') }}
    v_first_day := v_today - (p_days - 1);
    v_from := cast(v_first_day as timestamp) at time zone p_time_zone;
    v_to := cast(v_today + 1 as timestamp) at time zone p_time_zone;

    -- From here on the next build still rebuilds the hours: read them from the requests. Never
    -- before the raw retention watermark (those requests are gone; their hours are aggregated).
    v_open_from := greatest(
        coalesce({{ newest_bucket('int_usage_hourly_by_model') }} - {{ hours(var('lookback_hours')) }}, '-infinity'),
        {{ retained_from('usage_logs') }}
    );

    -- The days read stored: closed UTC days, or closed local days of the project's own zone when
    -- every one of them is stored (a zone set or changed since is added up instead).
    if p_time_zone = 'UTC' then
        v_stored_to := cast(v_open_from at time zone 'UTC' as date) - 1;
    else
        select max(day_end.date) into v_stored_to
        from generate_series(0, v_today - v_first_day) as day_offset
        cross join lateral (
            select v_first_day + day_offset as date
        ) as day_end
        where cast(day_end.date + 1 as timestamp) at time zone p_time_zone <= v_open_from;
        v_stored_to := coalesce(v_stored_to, v_first_day - 1);
        if v_stored_to >= v_first_day and (
            select count(*) from {{ local_daily }} as stored
            where stored.project_id = p_project_id and stored.time_zone = p_time_zone
                and stored.date >= v_first_day and stored.date <= v_stored_to
        ) < v_stored_to - v_first_day + 1 then
            v_stored_to := v_first_day - 1;
        end if;
    end if;
    v_stored_to := greatest(least(v_stored_to, v_today), v_first_day - 1);

    -- Local days added up need their hours (retention keeps hourly aggregates shorter than daily
    -- ones) and the requests of the hours their midnights split. (In UTC only the open days are
    -- added up, from the newest hours.)
    if p_time_zone <> 'UTC' then
        v_hours_kept_from := {{ retained_from('usage_aggregations_hourly') }};
        if greatest(v_from, cast(v_stored_to + 1 as timestamp) at time zone p_time_zone) < v_hours_kept_from
            and exists (
                select 1 from {{ ref('usage_aggregations_daily') }} as daily
                where daily.project_id = p_project_id
                    and daily.date >= cast(cast(v_stored_to + 1 as timestamp) at time zone p_time_zone at time zone 'UTC' as date)
                    and daily.date < cast(v_hours_kept_from at time zone 'UTC' as date)
            ) then
            raise exception 'get_dashboard_stats: the local days of % before % need hourly aggregates that retention deleted; ask for fewer days or use p_time_zone => ''UTC''',
                p_time_zone, cast(v_hours_kept_from at time zone p_time_zone as date) + 1
                using errcode = '22023';
        end if;
        -- and a split hour (a local midnight inside a UTC hour) needs its requests
        select max(split.hour_start) into v_split_hour
        from (
            select {{ utc_hour('cast(v_stored_to + 1 + day_offset as timestamp) at time zone p_time_zone') }} as hour_start,
                cast(v_stored_to + 1 + day_offset as timestamp) at time zone p_time_zone as midnight
            from generate_series(0, v_today - v_stored_to) as day_offset
        ) as split
        where
            split.midnight <> split.hour_start
            and split.hour_start < v_open_from
            and exists (
                select 1 from {{ ref('usage_aggregations_hourly') }} as hourly
                where hourly.project_id = p_project_id and hourly.hour_start = split.hour_start
            )
            and (
                split.hour_start < {{ retained_from('usage_logs') }}
                or not exists (
                    select 1 from {{ ref('int_usage_logs_classified') }} as logged
                    where logged.project_id = p_project_id
                        and logged.created_at >= split.hour_start
                        and logged.created_at < split.hour_start + {{ hours(1) }}
                )
            );
        if v_split_hour is not null then
            raise exception 'get_dashboard_stats: the local days of % before % need requests that retention deleted (a local midnight splits a UTC hour); ask for fewer days or use p_time_zone => ''UTC''',
                p_time_zone, cast(v_split_hour at time zone p_time_zone as date) + 2
                using errcode = '22023';
        end if;
    end if;

    return query
    with calendar as (

        select v_first_day + day_offset as date
        from generate_series(0, v_today - v_first_day) as day_offset

    ),

    stored_utc_days as (

        select
            date,
            total_requests,
            cached_requests,
            cache_hit_rate,
            total_tokens,
            total_cost_usd,
            total_potential_cost_usd,
            total_savings_usd,
            avg_latency_ms,
            requests_by_provider,
            requests_by_model,
            latency_p50_ms,
            latency_p95_ms,
            latency_p99_ms,
            tokens_cache_read,
            tokens_cache_write,
            tokens_reasoning,
            prompt_cache_savings_usd,
            error_requests,
            error_rate
        from {{ ref('usage_aggregations_daily') }}
        where p_time_zone = 'UTC' and project_id = p_project_id and date >= v_first_day and date <= v_stored_to

    ),

    stored_local_days as (

        select
            date,
            total_requests,
            cached_requests,
            cache_hit_rate,
            total_tokens,
            total_cost_usd,
            total_potential_cost_usd,
            total_savings_usd,
            avg_latency_ms,
            requests_by_provider,
            requests_by_model,
            latency_p50_ms,
            latency_p95_ms,
            latency_p99_ms,
            tokens_cache_read,
            tokens_cache_write,
            tokens_reasoning,
            prompt_cache_savings_usd,
            error_requests,
            error_rate
        from {{ local_daily }}
        where
            p_time_zone <> 'UTC'
            and project_id = p_project_id
            and time_zone = p_time_zone
            and date >= v_first_day
            and date <= v_stored_to
            and total_requests > 0

    ),

    added_up_days as (

        select
            date,
            total_requests,
            cached_requests,
            {{ percent_of('cached_requests', 'total_requests') }} as cache_hit_rate,
            tokens_input + tokens_output as total_tokens,
            total_cost_usd,
            total_potential_cost_usd,
            total_savings_usd,
            {{ ratio_2dp('latency_sum_ms', 'latency_count') }} as avg_latency_ms,
            requests_by_provider,
            requests_by_model,
            latency_p50_ms,
            latency_p95_ms,
            latency_p99_ms,
            tokens_cache_read,
            tokens_cache_write,
            tokens_reasoning,
            prompt_cache_savings_usd,
            error_requests,
            {{ percent_of('error_requests', 'total_requests') }} as error_rate
        from {{ ref('int_usage_local_days') }}(p_project_id, p_time_zone, v_stored_to + 1, v_today, v_open_from)
        where v_stored_to < v_today

    ),

    days_with_traffic as (

        select * from stored_utc_days
        union all
        select * from stored_local_days
        union all
        select * from added_up_days

    )

    select
        calendar.date,
        cast(coalesce(traffic.total_requests, 0) as bigint) as total_requests,
        cast(coalesce(traffic.cached_requests, 0) as bigint) as cached_requests,
        traffic.cache_hit_rate,
        cast(coalesce(traffic.total_tokens, 0) as bigint) as total_tokens,
        case when traffic.date is null then 0 else traffic.total_cost_usd end as total_cost_usd,
        case when traffic.date is null then 0 else traffic.total_potential_cost_usd end as total_potential_cost_usd,
        case when traffic.date is null then 0 else traffic.total_savings_usd end as total_savings_usd,
        traffic.avg_latency_ms,
        coalesce(traffic.requests_by_provider, cast('{}' as jsonb)) as requests_by_provider,
        coalesce(traffic.requests_by_model, cast('{}' as jsonb)) as requests_by_model,
        traffic.latency_p50_ms,
        traffic.latency_p95_ms,
        traffic.latency_p99_ms,
        cast(coalesce(traffic.tokens_cache_read, 0) as bigint) as tokens_cache_read,
        cast(coalesce(traffic.tokens_cache_write, 0) as bigint) as tokens_cache_write,
        cast(coalesce(traffic.tokens_reasoning, 0) as bigint) as tokens_reasoning,
        case when traffic.date is null then 0 else traffic.prompt_cache_savings_usd end as prompt_cache_savings_usd,
        cast(coalesce(traffic.error_requests, 0) as bigint) as error_requests,
        traffic.error_rate
    from calendar
    left join days_with_traffic as traffic on calendar.date = traffic.date
    order by calendar.date;
end
