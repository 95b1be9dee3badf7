{#
    The dashboard function (docs/contract.md, sections 6, 8 and 9):
    get_dashboard_stats(p_project_id, p_days, p_time_zone default 'UTC'), one row per calendar day
    of p_time_zone, oldest first, zero-filled.

    UTC: closed days come from usage_aggregations_daily; the still-open tail (everything the next
    scheduled build would rebuild) is read from int_usage_hourly_by_model and, past its newest hour
    minus the lookback, from the requests through the same query the build runs
    (aggregate_requests_by_hour), so a figure does not change when a build catches up.

    The project's own reporting zone: closed local days stored in usage_aggregations_local_daily
    are read as they are (the days before the newest one missing there are added up as below).

    Another zone: a local day is the instants from its local midnight to the next (23 or 25 hours
    on daylight-saving days). A closed local day is its UTC days (usage_by_model_daily, sketches
    from usage_aggregations_daily) plus and minus the UTC hours between each of its midnights and
    the nearest UTC midnight (int_usage_hourly_by_model, sketches from usage_aggregations_hourly),
    and the smaller side of an hour a midnight splits (zones at :30 and :45, e.g. Asia/Kathmandu)
    from the requests: everything subtracts exactly (docs/contract.md, section 9). The last local
    days, which reach into the open tail, add up whole hours and read split hours and the tail
    from the requests by each request's local date. Retention may have deleted the requests of an
    old split hour: then the call says so instead of guessing.
#}

{{
    config(
        materialized='sql_function',
        schema=env_var('WATCHLLM_API_SCHEMA', 'public'),
        arguments="p_project_id uuid, p_days integer, p_time_zone text default 'UTC'",
        argument_types='uuid, integer, text',
        replaces_argument_types=['uuid, integer'],
        settings={'enable_indexscan': 'on', 'enable_sort': 'off', 'plan_cache_mode': 'auto'},
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

{#- stored local days: a Postgres-only model, as this function is -#}
{%- set local_daily = ref('usage_aggregations_local_daily') if target.type == 'postgres' else none -%}
{%- set dashboard_columns = [
    'date', 'total_requests', 'cached_requests', 'cache_hit_rate', 'total_tokens', 'total_cost_usd',
    'total_potential_cost_usd', 'total_savings_usd', 'avg_latency_ms', 'requests_by_provider', 'requests_by_model',
    'latency_p50_ms', 'latency_p95_ms', 'latency_p99_ms',
] -%}
{#- the whole closed UTC hours of the open local days (hourly tables' rows of the project) -#}
{%- set whole_closed_local_hours -%}
project_id = p_project_id
            and hour_start >= v_open_local_from
            and hour_start < least(v_open_from, v_to)
            and not hour_start = any(v_split_hours)
{%- endset -%}
{%- set local_date = "cast((created_at at time zone p_time_zone) as date)" -%}
{#- the additive columns a closed local day adds up, signed (a money sum without a known value adds 0) -#}
{%- set signed_columns = [
    'total_requests', 'cached_requests', 'tokens_input', 'tokens_output', 'total_cost_usd', 'total_potential_cost_usd',
    'total_savings_usd', 'unpriced_requests', 'latency_sum_ms', 'latency_count',
] -%}
{%- set signed_sum_columns -%}
{%- for column in signed_columns -%}
coalesce(__rows__.{{ column }}, 0) as {{ column }}{{ ',\n            ' if not loop.last }}
{%- endfor -%}
{%- endset -%}
{#- the UTC midnight nearest to an instant (a local midnight's anchor: the UTC day a closed local day is built from) -#}
{%- set nearest_utc_midnight = utc_midnight(utc_date('__instant__ + ' ~ hours(12))) -%}
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
    v_closed_to_day date;
    v_computed_to_day date;
    v_open_local_from timestamptz;
    v_first_hour timestamptz;
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
    -- the oldest hour retention left (checked below for a local day): an index probe here, while
    -- plain index scans are still on; without them it is a scan of the whole table (0.6 s at 10M rows)
    select min(hour_start) into v_first_hour from {{ ref('int_usage_hourly_by_model') }};

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
    -- The closed local days (up to v_closed_to_day): every piece they are built from lies before
    -- the open tail's UTC day (see closed_pieces below).
    select coalesce(max(local_day), v_first_day - 1)
    into v_closed_to_day
    from (
        select
            cast(day_start as date) - 1 as local_day,
            cast(day_start as timestamp) at time zone p_time_zone as local_midnight
        from generate_series(v_first_day + 1, v_today + 1, interval '1 day') as day_start
    ) as day_ends
    where greatest(local_midnight, {{ nearest_utc_midnight | replace('__instant__', 'local_midnight') }})
        <= {{ utc_midnight(utc_date('v_open_from')) }};
    -- Closed local days stored for the project's own zone (usage_aggregations_local_daily) are read
    -- as they are; the days before the last one missing there (a zone set or changed since) are
    -- added up below (up to v_computed_to_day). One index probe per day.
    select coalesce(max(cast(day_start as date)), v_first_day - 1)
    into v_computed_to_day
    from generate_series(v_first_day, v_closed_to_day, interval '1 day') as day_start
    where not exists (
        select 1 from {{ local_daily }} as stored
        where stored.project_id = p_project_id and stored.date = cast(day_start as date)
            and stored.time_zone = p_time_zone
    );
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
        -- the split hours of the days added up below and of the open days
        and (split.hour_start <= cast(v_computed_to_day + 1 as timestamp) at time zone p_time_zone
            or split.hour_start + {{ hours(1) }} > cast(v_closed_to_day + 1 as timestamp) at time zone p_time_zone)
        and exists (
            select 1 from {{ ref('int_usage_hourly_by_model') }} as hourly
            where hourly.project_id = p_project_id and hourly.hour_start = split.hour_start
        )
        and (split.hour_start < {{ retained_from('usage_logs') }} or not exists (
            select 1 from {{ source('proxy', 'usage_logs') }} as logged
            where
                logged.project_id = p_project_id
                and logged.created_at >= split.hour_start
                and logged.created_at < split.hour_start + {{ hours(1) }}
        ));
    if v_missing_hour is not null then
        -- neither local day of that hour (before and after its midnight) can be split
        raise exception 'get_dashboard_stats: the local days of % before % need requests that retention deleted (a local midnight splits a UTC hour); ask for fewer days or use p_time_zone => ''UTC''',
            p_time_zone, cast(v_missing_hour at time zone p_time_zone as date) + 2
            using errcode = '22023';
    end if;

    -- a closed local day needs the hours between its midnights: if retention deleted them (whole
    -- UTC days of hourly aggregates, kept shorter than the daily ones), say so instead of
    -- returning the UTC day (one probe of each table's index)
    if v_computed_to_day >= v_first_day then
        if exists (
            select 1 from {{ ref('usage_by_model_daily') }} as daily
            where
                daily.project_id = p_project_id
                and daily.date >= {{ utc_date('least(v_from, ' ~ (nearest_utc_midnight | replace('__instant__', 'v_from')) ~ ')') }}
                and daily.date < coalesce({{ utc_date('v_first_hour') }}, 'infinity'::date)
                and daily.date <= v_computed_to_day + 1
        ) then
            raise exception 'get_dashboard_stats: the local days of % before % need hourly aggregates that retention deleted; ask for fewer days or use p_time_zone => ''UTC''',
                p_time_zone, coalesce(cast(v_first_hour at time zone p_time_zone as date) + 2, v_today + 1)
                using errcode = '22023';
        end if;
    end if;

    v_open_local_from := cast(v_closed_to_day + 1 as timestamp) at time zone p_time_zone;
    -- Planning this query takes longer than running it for most projects (~20 ms): plan it once per
    -- session. The plan does not depend on the values (undone when the function returns).
    perform set_config('plan_cache_mode', 'force_generic_plan', true);

    return query
    with calendar as (

        select cast(day_start as date) as date
        from generate_series(v_first_day, v_today, interval '1 day') as day_start

    ),

    -- Closed local days: a local day is the UTC days between the anchors of its two midnights
    -- (each midnight's nearest UTC midnight), plus or minus the instants between each midnight and
    -- its anchor. Sums and counts subtract exactly, and so do sketch counts, so a day costs its
    -- daily rows and the few hours between the midnights, not 24 hourly rows.
    closed_midnights as (

        select
            local_day,
            local_midnight,
            {{ nearest_utc_midnight | replace('__instant__', 'local_midnight') }} as anchor_midnight,
            {{ utc_hour('local_midnight') }} as midnight_hour
        from (
            select
                cast(day_start as date) as local_day,
                cast(day_start as timestamp) at time zone p_time_zone as local_midnight
            from generate_series(v_first_day, v_computed_to_day + 1, interval '1 day') as day_start
        ) as midnights
        where v_computed_to_day >= v_first_day

    ),

    midnight_gaps as (

        -- the instants between a local midnight and its anchor: the day starting at the midnight
        -- gains them if the midnight comes first (loses them otherwise), the day ending there the
        -- opposite. A midnight inside a UTC hour splits it in two sides: the gap holds one; the
        -- smaller side is read from the requests, and the whole hour too when the gap's side is the larger.
        select
            *,
            (part_in_gap > {{ minutes(30) }}) as is_read_whole,
            case when (part_in_gap > {{ minutes(30) }}) = (local_midnight < anchor_midnight)
                then midnight_hour else local_midnight end as requests_from,
            case when (part_in_gap > {{ minutes(30) }}) = (local_midnight < anchor_midnight)
                then local_midnight else midnight_hour + {{ hours(1) }} end as requests_to
        from (
            select
                local_day,
                local_midnight,
                anchor_midnight,
                midnight_hour,
                case when local_midnight < anchor_midnight then 1 else -1 end as starting_day_sign,
                case
                    when local_midnight > anchor_midnight then anchor_midnight
                    when local_midnight = midnight_hour then local_midnight
                    else midnight_hour + {{ hours(1) }}
                end as whole_hours_from,
                case when local_midnight < anchor_midnight then anchor_midnight else midnight_hour end
                    as whole_hours_to,
                case
                    when local_midnight = midnight_hour then null
                    when local_midnight < anchor_midnight then midnight_hour + {{ hours(1) }} - local_midnight
                    else local_midnight - midnight_hour
                end as part_in_gap
            from closed_midnights
            where local_midnight <> anchor_midnight
        ) as gaps

    ),

    gap_pieces as (

        select local_day, starting_day_sign, 'hour' as piece, hour_start, 1 as gap_sign
        from midnight_gaps
        cross join lateral generate_series(whole_hours_from, whole_hours_to - {{ hours(1) }}, {{ hours(1) }}) as hour_start

        union all

        -- the hour a midnight splits, read whole when the requests part is its smaller side
        select local_day, starting_day_sign, 'hour', midnight_hour, 1
        from midnight_gaps
        where is_read_whole

        union all

        select
            local_day,
            starting_day_sign,
            'requests',
            midnight_hour,
            case when is_read_whole then -1 else 1 end
        from midnight_gaps
        where part_in_gap is not null

    ),

    closed_pieces as (

        -- (local day, sign, piece): UTC days whole, UTC hours whole, or a split hour's requests
        select local_day as date, starting_day_sign * gap_sign as sign, piece, hour_start
        from gap_pieces
        where local_day <= v_computed_to_day

        union all

        select local_day - 1, -starting_day_sign * gap_sign, piece, hour_start
        from gap_pieces
        where local_day > v_first_day

        union all

        -- (24 hours, not '1 day': a day's length in timestamptz arithmetic follows the session's TimeZone)
        select day_start.local_day, 1, 'day', utc_midnight
        from closed_midnights as day_start
        inner join closed_midnights as day_end on day_end.local_day = day_start.local_day + 1
        cross join lateral generate_series(
            day_start.anchor_midnight, day_end.anchor_midnight - {{ hours(24) }}, {{ hours(24) }}
        ) as utc_midnight

    ),

    split_hour_requests as (

        -- the smaller side of each split hour, from the requests (one index range each; `offset 0`
        -- keeps the planner from merging them into one scan of all the project's rows)
        {{ aggregate_requests_by_hour(
            "(select part_requests.* from midnight_gaps as gap"
            ~ " cross join lateral (select * from " ~ ref('int_usage_logs_validated') ~ " as hour_requests"
            ~ " where hour_requests.project_id = p_project_id"
            ~ " and hour_requests.created_at >= gap.requests_from"
            ~ " and hour_requests.created_at < gap.requests_to"
            ~ " offset 0) as part_requests"
            ~ " where gap.part_in_gap is not null) as split_requests",
            ref('stg_pricing__model_prices'),
            "true",
            group_by_logged_labels=true,
        ) | indent(8) }}

    ),

    signed_model_rows as (

        -- every piece's per-model sums, signed, with the UTC date they belong to
        select pieces.date, pieces.sign, daily.date as usage_date, daily.provider, daily.model,
            {{ signed_sum_columns | replace('__rows__', 'daily') }}
        from closed_pieces as pieces
        inner join {{ ref('usage_by_model_daily') }} as daily
            on daily.project_id = p_project_id and daily.date = {{ utc_date('pieces.hour_start') }}
        where pieces.piece = 'day'

        union all

        select pieces.date, pieces.sign, {{ utc_date('hourly.hour_start') }}, hourly.provider, hourly.model,
            {{ signed_sum_columns | replace('__rows__', 'hourly') }}
        from closed_pieces as pieces
        inner join {{ ref('int_usage_hourly_by_model') }} as hourly
            on hourly.project_id = p_project_id and hourly.hour_start = pieces.hour_start
        where pieces.piece = 'hour'

        union all

        select pieces.date, pieces.sign, {{ utc_date('requests.hour_start') }}, requests.provider, requests.model,
            {{ signed_sum_columns | replace('__rows__', 'requests') }}
        from closed_pieces as pieces
        inner join split_hour_requests as requests on requests.hour_start = pieces.hour_start
        where pieces.piece = 'requests'

    ),

    closed_model_parts as (

        -- a local day's requests of one model on one UTC date (the parts a local day adds up)
        select
            date,
            usage_date,
            provider,
            model,
            {%- for column in signed_columns %}
            sum(sign * {{ column }}) as {{ column }}{{ ',' if not loop.last }}
            {%- endfor %}
        from signed_model_rows
        group by date, usage_date, provider, model

    ),

    closed_totals as (

        -- a price is fixed per model and UTC date, so a part's requests of unknown cost are exactly
        -- its unpriced requests that are not cached (none when it has a price); the money sums are
        -- NULL when no request has a known value, as a roll-up of the requests gives
        select
            date,
            sum(total_requests) as total_requests,
            sum(cached_requests) as cached_requests,
            sum(tokens_input) as tokens_input,
            sum(tokens_output) as tokens_output,
            case when bool_or(total_requests > unpriced_requests or cached_requests > 0)
                then sum(total_cost_usd) end as total_cost_usd,
            case when sum(unpriced_requests) < sum(total_requests) then sum(total_potential_cost_usd) end
                as total_potential_cost_usd,
            case when sum(unpriced_requests) < sum(total_requests) then sum(total_savings_usd) end
                as total_savings_usd,
            sum(latency_sum_ms) as latency_sum_ms,
            sum(latency_count) as latency_count
        from closed_model_parts
        where total_requests > 0
        group by date

    ),

    {%- for label in ['provider', 'model'] %}

    closed_{{ label }}_maps as (

        select date, {{ counts_to_map(label, 'requests') }} as requests_by_{{ label }}
        from (
            select date, {{ label }}, sum(total_requests) as requests
            from closed_model_parts
            group by date, {{ label }}
            having sum(total_requests) > 0
        ) as {{ label }}_counts
        group by date

    ),
    {%- endfor %}

    signed_sketch_rows as (

        -- one sketch per UTC day and hour (not one per model), and the split hours' per model
        select pieces.date, pieces.sign, daily.latency_sketch
        from closed_pieces as pieces
        inner join {{ ref('usage_aggregations_daily') }} as daily
            on daily.project_id = p_project_id and daily.date = {{ utc_date('pieces.hour_start') }}
        where pieces.piece = 'day' and daily.latency_sketch is not null

        union all

        select pieces.date, pieces.sign, hourly.latency_sketch
        from closed_pieces as pieces
        inner join {{ ref('usage_aggregations_hourly') }} as hourly
            on hourly.project_id = p_project_id and hourly.hour_start = pieces.hour_start
        where pieces.piece = 'hour' and hourly.latency_sketch is not null

        union all

        select pieces.date, pieces.sign, requests.latency_sketch
        from closed_pieces as pieces
        inner join split_hour_requests as requests on requests.hour_start = pieces.hour_start
        where pieces.piece = 'requests' and requests.latency_sketch is not null

    ),

    {{ merge_latency_sketches('signed_sketch_rows', ['date'], 'closed', keep_sketch=false, sign_column='sign') }}

    closed_days as (

        select
            totals.date,
            cast(totals.total_requests as bigint) as total_requests,
            cast(totals.cached_requests as bigint) as cached_requests,
            {{ percent_of('totals.cached_requests', 'totals.total_requests') }} as cache_hit_rate,
            cast(totals.tokens_input + totals.tokens_output as bigint) as total_tokens,
            totals.total_cost_usd,
            totals.total_potential_cost_usd,
            totals.total_savings_usd,
            {{ ratio_2dp('totals.latency_sum_ms', 'totals.latency_count') }} as avg_latency_ms,
            provider_maps.requests_by_provider,
            model_maps.requests_by_model,
            sketches.latency_p50_ms,
            sketches.latency_p95_ms,
            sketches.latency_p99_ms
        from closed_totals as totals
        inner join closed_provider_maps as provider_maps on totals.date = provider_maps.date
        inner join closed_model_maps as model_maps on totals.date = model_maps.date
        left join closed_sketches as sketches on totals.date = sketches.date
        where totals.total_requests > 0

    ),

    stored_days as (

        select
            {{ dashboard_columns | join(',\n            ') }}
        from {{ local_daily }}
        where
            project_id = p_project_id
            and time_zone = p_time_zone
            and date > v_computed_to_day
            and date <= v_closed_to_day
            and total_requests > 0

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
                ~ " where split.hour_start < v_open_from and split.hour_start + " ~ hours(1) ~ " > v_open_local_from"
                ~ " union all select tail_requests.* from " ~ ref('int_usage_logs_validated') ~ " as tail_requests"
                ~ " where tail_requests.project_id = p_project_id and tail_requests.created_at >= v_open_from"
                ~ " and tail_requests.created_at < v_to) as local_requests",
                ref('stg_pricing__model_prices'),
                "created_at >= v_open_local_from and created_at < v_to",
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

    ),

    days_with_traffic as (

        select * from closed_days
        union all
        select * from stored_days
        union all
        select * from local_days

    )

    {{ zero_filled_rows | replace('__days__', 'days_with_traffic') | indent(4) }};
end
