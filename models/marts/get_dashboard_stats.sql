{#
    The dashboard function (docs/contract.md, section 6). Closed days come from usage_aggregations_daily;
    the still-open tail (everything the next scheduled build would rebuild) is read from
    int_usage_hourly_by_model and, past its newest hour minus the lookback, from the requests
    through the same query the build runs (aggregate_requests_by_hour), so a figure does not
    change when a build catches up.
#}

{{
    config(
        materialized='sql_function',
        schema=env_var('WATCHLLM_API_SCHEMA', 'public'),
        arguments='p_project_id uuid, p_days integer',
        settings={'enable_indexscan': 'on', 'enable_sort': 'off'},
        argument_types='uuid, integer',
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

#variable_conflict use_column
declare
    v_today date := {{ utc_date('now()') }};
    v_first_day date;
    v_open_from timestamptz;
    v_open_day date;
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

    v_first_day := v_today - (p_days - 1);

    -- Hours from here on are rebuilt by the next scheduled build: read them from the requests.
    select max(hour_start) - {{ hours(var('lookback_hours')) }}
    into v_open_from
    from {{ ref('int_usage_hourly_by_model') }};
    v_open_from := coalesce(v_open_from, '-infinity'::timestamptz);
    v_open_day := greatest({{ utc_date('v_open_from') }}, v_first_day);

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

    return query
    with calendar as (

        select cast(day_start as date) as date
        from generate_series(v_first_day, v_today, interval '1 day') as day_start

    ),

    closed_days as (

        select
            {{ dashboard_columns | join(',\n            ') }}
        from {{ ref('usage_aggregations_daily') }}
        where project_id = p_project_id and date >= v_first_day and date < v_open_day

    ),

    open_usage as (

        select
            project_id,
            {{ utc_date('hour_start') }} as usage_day,
            provider,
            model,
            {{ hourly_sum_columns() | join(',\n            ') }}
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
            {{ hourly_sum_columns() | join(',\n            ') }}
        from (
            {{ aggregate_requests_by_hour(
                ref('int_usage_logs_validated'),
                ref('stg_pricing__model_prices'),
                "project_id = p_project_id and created_at >= greatest(v_open_from, " ~ utc_midnight('v_open_day')
                ~ ") and created_at < " ~ utc_midnight('v_today + 1'),
                group_by_logged_labels=true,
            ) | indent(12) }}
        ) as not_yet_built

    ),

    {{ rollup_usage('open_usage', 'usage_day', 'date') }},

    open_days as (

        select
            {{ dashboard_columns | join(',\n            ') }}
        from rolled_up

    ),

    days_with_traffic as (

        select * from closed_days
        union all
        select * from open_days

    )

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
    left join days_with_traffic as traffic on calendar.date = traffic.date
    order by calendar.date;
end
