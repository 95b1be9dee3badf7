{#
    The dashboard function (docs/contract.md, sections 6, 8 and 9):
    get_dashboard_stats(p_project_id, p_days, p_time_zone default 'UTC'), one row per calendar day
    of p_time_zone, oldest first, zero-filled.

    UTC: closed days come from usage_aggregations_daily; the still-open tail (everything the next
    scheduled build would rebuild) is read from int_usage_hourly_by_model and, past its newest hour
    minus the lookback, from the requests through the same query the build runs
    (aggregate_requests_by_hour), so a figure does not change when a build catches up.

    Another zone: a local day is the instants from its local midnight to the next (23 or 25 hours
    on daylight-saving days). Whole UTC hours come from int_usage_hourly_by_model (their latency
    sketches from usage_aggregations_hourly: one per hour, not one per model); an hour that a
    local midnight splits (zones at :30 and :45, e.g. Asia/Kathmandu) and the open tail are read
    from the requests and split by each request's local date. Retention may have deleted the
    requests of an old split hour: then the call says so instead of guessing.
#}

{{
    config(
        materialized='sql_function',
        schema=env_var('WATCHLLM_API_SCHEMA', 'public'),
        arguments="p_project_id uuid, p_days integer, p_time_zone text default 'UTC'",
        argument_types='uuid, integer, text',
        replaces_argument_types=['uuid, integer'],
        settings={'enable_indexscan': 'on', 'enable_sort': 'off'},
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
            latency_p99_ms numeric
        )""",
    )
}}

{%- set dashboard_columns = [
    'date', 'total_requests', 'cached_requests', 'cache_hit_rate', 'total_tokens', 'total_cost_usd',
    'total_potential_cost_usd', 'total_savings_usd', 'avg_latency_ms', 'requests_by_provider', 'requests_by_model',
    'latency_p50_ms', 'latency_p95_ms', 'latency_p99_ms',
] -%}
{#- the whole closed UTC hours of the local days asked for (hourly tables' rows of the project) -#}
{%- set whole_closed_local_hours -%}
project_id = p_project_id
            and hour_start >= v_from
            and hour_start < least(v_open_from, v_to)
            and not hour_start = any(v_split_hours)
{%- endset -%}
{%- set local_date = "cast((created_at at time zone p_time_zone) as date)" -%}
{%- set zero_filled_rows -%}
select
    calendar.date,
    coalesce(traffic.total_requests, 0)::bigint,
    coalesce(traffic.cached_requests, 0)::bigint,
    traffic.cache_hit_rate,
    coalesce(traffic.total_tokens, 0)::bigint,
    case when traffic.date is null then 0 else traffic.total_cost_usd end,
    case when traffic.date is null then 0 else traffic.total_potential_cost_usd end,
    case when traffic.date is null then 0 else traffic.total_savings_usd end,
    traffic.avg_latency_ms,
    coalesce(traffic.requests_by_provider, '{}'::jsonb),
    coalesce(traffic.requests_by_model, '{}'::jsonb),
    traffic.latency_p50_ms,
    traffic.latency_p95_ms,
    traffic.latency_p99_ms
from calendar
left join __days__ as traffic on calendar.date = traffic.date
order by calendar.date
{%- endset -%}


#variable_conflict use_column
declare
    v_today date;
    v_first_day date;
    v_open_from timestamptz;
    v_open_day date;
    v_from timestamptz;
    v_to timestamptz;
    v_split_hours timestamptz[];
    v_missing_hour timestamptz;
begin
    if p_project_id is null then
        raise exception 'get_dashboard_stats: p_project_id is NULL; pass the project''s uuid'
            using errcode = '22004';
    end if;
    if p_days is null or p_days < 1 or p_days > 366 then
        raise exception 'get_dashboard_stats: p_days must be between 1 and 366, got %',
            coalesce(p_days::text, 'NULL')
            using errcode = '22023';
    end if;
    if p_time_zone is null then
        raise exception 'get_dashboard_stats: p_time_zone is NULL; pass a time zone name such as ''UTC'' or ''Europe/Berlin'''
            using errcode = '22004';
    end if;
    -- a name of the time zone database; not a POSIX offset such as '+05:30' (whose sign Postgres inverts)
    if p_time_zone !~ '^[A-Za-z][A-Za-z0-9_+/-]*$' then
        raise exception 'get_dashboard_stats: p_time_zone % is not a time zone name; pass one such as ''Asia/Kolkata''',
            quote_literal(p_time_zone)
            using errcode = '22023';
    end if;
    begin
        v_today := cast(now() at time zone p_time_zone as date);
    exception when invalid_parameter_value then
        raise exception 'get_dashboard_stats: p_time_zone % is not a time zone Postgres knows; pass an IANA name such as ''America/New_York''',
            quote_literal(p_time_zone)
            using errcode = '22023';
    end;
    v_first_day := v_today - (p_days - 1);

    -- Hours from here on are rebuilt by the next scheduled build: read them from the requests.
    select max(hour_start) - {{ hours(var('lookback_hours')) }}
    into v_open_from
    from {{ ref('int_usage_hourly_by_model') }};
    v_open_from := coalesce(v_open_from, '-infinity'::timestamptz);

    -- The tail below is a few thousand rows of one project, ~2 ms through a bitmap scan of the
    -- (project_id, created_at) index. The planner prices that as one random page read per row and
    -- prefers a plain scan of the created_at index (the table's physical order), which walks every
    -- project's rows of those hours: ~35 ms for the busiest project at 10M rows (make bench).
    -- Without plain index scans it takes the bitmap scan. Undone when the function returns
    -- (settings above).
    -- Sorts are off too (settings above): the planner expects a few hundred rows where the busiest
    -- project has thousands, and groups and joins them by sorting where hashing is ~20% faster
    -- (p50 16 vs 20 ms for it at 10M rows, measured side by side). Only the final ORDER BY sorts.
    perform set_config('enable_indexscan', 'off', true);

    if p_time_zone = 'UTC' then
        v_open_day := greatest({{ utc_date('v_open_from') }}, v_first_day);

        return query
        with calendar as (

            select cast(day_start as date) as date
            from generate_series(v_first_day, v_today, interval '1 day') as day_start

        ),

        closed_days as (

            select
                {{ dashboard_columns | join(',\n                ') }}
            from {{ ref('usage_aggregations_daily') }}
            where project_id = p_project_id and date >= v_first_day and date < v_open_day

        ),

        open_usage as (

            select
                project_id,
                {{ utc_date('hour_start') }} as usage_day,
                provider,
                model,
                {{ hourly_sum_columns() | join(',\n                ') }}
            from {{ ref('int_usage_hourly_by_model') }}
            where
                project_id = p_project_id
                and hour_start >= {{ utc_midnight('v_open_day') }}
                and hour_start < v_open_from

            union all

            select
                project_id,
                {{ utc_date('hour_start') }},
                provider,
                model,
                {{ hourly_sum_columns() | join(',\n                ') }}
            from (
                {{ aggregate_requests_by_hour(
                    ref('int_usage_logs_validated'),
                    ref('stg_pricing__model_prices'),
                    "project_id = p_project_id and created_at >= greatest(v_open_from, " ~ utc_midnight('v_open_day')
                    ~ ") and created_at < " ~ utc_midnight('v_today + 1'),
                    group_by_logged_labels=true,
                ) | indent(16) }}
            ) as not_yet_built

        ),

        {{ rollup_usage('open_usage', 'usage_day', 'date', inline_input=false, keep_sketch=false) | indent(8) }},

        open_days as (

            select
                {{ dashboard_columns | join(',\n                ') }}
            from rolled_up

        ),

        days_with_traffic as (

            select * from closed_days
            union all
            select * from open_days

        )

        {{ zero_filled_rows | replace('__days__', 'days_with_traffic') | indent(8) }};
        return;
    end if;

    -- Another zone: the local days' first and last instants, and the UTC hours a local midnight splits.
    v_from := cast(v_first_day as timestamp) at time zone p_time_zone;
    v_to := cast(v_today + 1 as timestamp) at time zone p_time_zone;
    select coalesce(array_agg(distinct {{ utc_hour('midnight') }}), '{}')
    into v_split_hours
    from (
        select cast(day_start as timestamp) at time zone p_time_zone as midnight
        from generate_series(v_first_day, v_today + 1, interval '1 day') as day_start
    ) as local_midnights
    where midnight <> {{ utc_hour('midnight') }};

    -- a split hour needs its requests: if retention deleted them, the day cannot be split exactly
    -- (one probe of the (project_id, created_at) index per split hour that has aggregates; of the
    -- source table, whose created_at the staging view passes through: the planner does not push a
    -- correlated condition into the view and read all of a busy project's rows, 16 s at 10M rows)
    select max(split.hour_start)
    into v_missing_hour
    from unnest(v_split_hours) as split(hour_start)
    where
        split.hour_start < v_open_from
        and exists (
            select 1 from {{ ref('int_usage_hourly_by_model') }} as hourly
            where hourly.project_id = p_project_id and hourly.hour_start = split.hour_start
        )
        and not exists (
            select 1 from {{ source('proxy', 'usage_logs') }} as logged
            where
                logged.project_id = p_project_id
                and logged.created_at >= split.hour_start
                and logged.created_at < split.hour_start + {{ hours(1) }}
        );
    if v_missing_hour is not null then
        -- neither local day of that hour (before and after its midnight) can be split
        raise exception 'get_dashboard_stats: the local days of % before % need requests that retention deleted (a local midnight splits a UTC hour); ask for fewer days or use p_time_zone => ''UTC''',
            p_time_zone, cast(v_missing_hour at time zone p_time_zone as date) + 2
            using errcode = '22023';
    end if;

    return query
    with calendar as (

        select cast(day_start as date) as date
        from generate_series(v_first_day, v_today, interval '1 day') as day_start

    ),

    local_usage as (

        -- whole closed UTC hours: every request of the hour has the hour's local date (their
        -- sketches come one per hour from usage_aggregations_hourly, in local_sketches)
        select
            project_id,
            cast(hour_start at time zone p_time_zone as date) as usage_day,
            provider,
            model,
            {%- for column in hourly_sum_columns() %}
            {{ 'cast(null as jsonb) as latency_sketch' if column == 'latency_sketch' else column }}{{ ',' if not loop.last }}
            {%- endfor %}
        from {{ ref('int_usage_hourly_by_model') }}
        where {{ whole_closed_local_hours }}

        union all

        -- split hours and the open tail, from the requests, each by its own local date (one index
        -- range per split hour: `offset 0` keeps the planner from merging them into one scan of
        -- all the project's rows)
        select
            project_id,
            local_date,
            provider,
            model,
            {{ hourly_sum_columns() | join(',\n            ') }}
        from (
            {{ aggregate_requests_by_hour(
                "(select split_requests.* from unnest(v_split_hours) as split(hour_start)"
                ~ " cross join lateral (select * from " ~ ref('int_usage_logs_validated') ~ " as hour_requests"
                ~ " where hour_requests.project_id = p_project_id"
                ~ " and hour_requests.created_at >= split.hour_start"
                ~ " and hour_requests.created_at < split.hour_start + " ~ hours(1)
                ~ " offset 0) as split_requests"
                ~ " where split.hour_start < v_open_from"
                ~ " union all select tail_requests.* from " ~ ref('int_usage_logs_validated') ~ " as tail_requests"
                ~ " where tail_requests.project_id = p_project_id and tail_requests.created_at >= v_open_from"
                ~ " and tail_requests.created_at < v_to) as local_requests",
                ref('stg_pricing__model_prices'),
                "created_at >= v_from and created_at < v_to",
                group_by_logged_labels=true,
                extra_groups={'local_date': local_date},
            ) | indent(12) }}
        ) as read_from_requests

    ),

    local_sketches as (

        -- one merged sketch per whole closed hour (a fifth of the entries of the per-model rows for
        -- a busy project), and the sketches of what was read from the requests
        select
            project_id,
            cast(hour_start at time zone p_time_zone as date) as date,
            latency_sketch
        from {{ ref('usage_aggregations_hourly') }}
        where {{ whole_closed_local_hours }}

        union all

        select project_id, usage_day, latency_sketch
        from local_usage
        where latency_sketch is not null

    ),

    {{ rollup_usage('local_usage', 'usage_day', 'date', inline_input=false, sketch_rows='local_sketches', keep_sketch=false) }},

    local_days as (

        select
            {{ dashboard_columns | join(',\n            ') }}
        from rolled_up

    )

    {{ zero_filled_rows | replace('__days__', 'local_days') | indent(4) }};
end
