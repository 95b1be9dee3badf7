{#
    The breakdown RPC (docs/contract.md, sections 15 and 16):
    get_usage_breakdown(p_project_id, p_dimension, p_days, p_time_zone default 'UTC', p_limit default 20),
    one row per value of p_dimension (api_key, end_user or tag) over the last p_days calendar days
    of p_time_zone: the top p_limit values by cost, then, for api_key and end_user, one row
    `(other)` with the rest, so that those rows add up to the project's totals exactly. A request
    counts once under each of its tags, so tag rows do not add up to the project's totals, and no
    `(other)` row is given for tags.

    The days are the dashboard's (get_dashboard_stats): the instants from the first day's local
    midnight to the next local midnight after today, read as
    - closed UTC days (in UTC only) from usage_by_dimension_daily;
    - every other whole UTC hour before the open tail from int_usage_hourly_by_dimension;
    - the requests of the hour a local midnight splits (zones at :30 and :45) and of the open tail
      (from the newest built hour minus the lookback), grouped and priced like the dimension pass.
    Every read goes through the (project_id, ...) indexes under the caller's row level security, so
    a caller who may not see the project finds nothing after a few index probes.
#}

{{
    config(
        materialized='sql_function',
        schema=env_var('WATCHLLM_API_SCHEMA', 'public'),
        arguments="p_project_id uuid, p_dimension text, p_days integer, p_time_zone text default 'UTC', p_limit integer default 20",
        argument_types='uuid, text, integer, text, integer',
        settings={'plan_cache_mode': 'force_generic_plan'},
        returns="""table (
            value text,
            total_requests bigint,
            cached_requests bigint,
            cache_hit_rate numeric,
            error_requests bigint,
            error_rate numeric,
            total_tokens bigint,
            total_cost_usd numeric,
            total_potential_cost_usd numeric,
            total_savings_usd numeric,
            prompt_cache_savings_usd numeric,
            unpriced_requests bigint,
            latency_p50_ms numeric,
            latency_p95_ms numeric,
            latency_p99_ms numeric
        )""",
    )
}}

{%- set has_token_classes = usage_logs_have_token_classes() %}
{%- set dimensions = logged_dimensions() %}
{%- set columns = attribution_dimensions() %}

#variable_conflict use_column
declare
    v_today date;
    v_first_day date;
    v_from timestamptz;
    v_to timestamptz;
    v_open_from timestamptz;
    v_stored_to date;
    v_hours_from timestamptz;
    v_first_whole_hour timestamptz;
begin
    {{ rpc_argument_checks('get_usage_breakdown') }}
    if p_dimension is null or p_dimension not in ('api_key', 'end_user', 'tag') then
        raise exception 'get_usage_breakdown: p_dimension must be ''api_key'', ''end_user'' or ''tag'', got %',
            coalesce(quote_literal(p_dimension), 'NULL')
            using errcode = '22023';
    end if;
    if p_limit is null or p_limit < 1 or p_limit > 1000 then
        raise exception 'get_usage_breakdown: p_limit must be between 1 and 1000, got %',
            coalesce(p_limit::text, 'NULL')
            using errcode = '22023';
    end if;
    v_first_day := v_today - (p_days - 1);
    v_from := cast(v_first_day as timestamp) at time zone p_time_zone;
    v_to := cast(v_today + 1 as timestamp) at time zone p_time_zone;
    -- the first whole UTC hour of the range: before it, a local midnight splits an hour
    v_first_whole_hour := {{ utc_hour('v_from') }};
    if v_first_whole_hour < v_from then
        v_first_whole_hour := v_first_whole_hour + {{ hours(1) }};
    end if;

    -- From here on the next build still rebuilds the hours: read them from the requests, never
    -- before the raw retention watermark (those requests are gone; their hours are aggregated).
    v_open_from := greatest(
        coalesce({{ newest_bucket('int_usage_hourly_by_dimension') }} - {{ hours(var('lookback_hours')) }}, '-infinity'),
        {{ retained_from('usage_logs') }}
    );

    -- closed UTC days are read stored; the rest from hours
    if p_time_zone = 'UTC' then
        v_stored_to := greatest(least(cast(v_open_from at time zone 'UTC' as date) - 1, v_today), v_first_day - 1);
        v_hours_from := cast(v_stored_to + 1 as timestamp) at time zone 'UTC';
    else
        v_stored_to := v_first_day - 1;
        v_hours_from := v_first_whole_hour;
    end if;

    -- hours retention deleted cannot make up a local day; nor can a split hour without its requests
    if v_hours_from < least(v_open_from, v_to)
        and v_hours_from < {{ retained_from('int_usage_hourly_by_dimension') }}
        and exists (
            select 1 from {{ ref('usage_by_dimension_daily') }} as daily
            where daily.project_id = p_project_id and daily.dimension = p_dimension
                and daily.date >= cast(v_hours_from at time zone 'UTC' as date)
                and daily.date < cast({{ retained_from('int_usage_hourly_by_dimension') }} at time zone 'UTC' as date)
        ) then
        raise exception 'get_usage_breakdown: the local days of % before % need hourly aggregates that retention deleted; ask for fewer days or use p_time_zone => ''UTC''',
            p_time_zone, cast({{ retained_from('int_usage_hourly_by_dimension') }} at time zone p_time_zone as date) + 1
            using errcode = '22023';
    end if;
    if v_first_whole_hour > v_from and v_from < v_open_from and v_from < {{ retained_from('usage_logs') }}
        and exists (
            select 1 from {{ ref('int_usage_hourly_by_dimension') }} as hourly
            where hourly.project_id = p_project_id and hourly.dimension = p_dimension
                and hourly.hour_start = v_first_whole_hour - {{ hours(1) }}
        ) then
        raise exception 'get_usage_breakdown: the local day % needs requests that retention deleted (a local midnight splits a UTC hour); ask for fewer days or use p_time_zone => ''UTC''',
            v_first_day
            using errcode = '22023';
    end if;

    return query
    with stored_days as (

        select
            value,
            total_requests,
            cached_requests,
            error_requests,
            tokens_input,
            tokens_output,
            total_cost_usd,
            total_potential_cost_usd,
            total_savings_usd,
            prompt_cache_savings_usd,
            unpriced_requests,
            latency_sketch
        from {{ ref('usage_by_dimension_daily') }}
        where
            project_id = p_project_id
            and dimension = p_dimension
            and date >= v_first_day
            and date <= v_stored_to

    ),

    whole_hours as (

        select
            value,
            total_requests,
            cached_requests,
            error_requests,
            tokens_input,
            tokens_output,
            total_cost_usd,
            total_potential_cost_usd,
            total_savings_usd,
            prompt_cache_savings_usd,
            unpriced_requests,
            latency_sketch
        from {{ ref('int_usage_hourly_by_dimension') }}
        where
            project_id = p_project_id
            and dimension = p_dimension
            and hour_start >= v_hours_from
            and hour_start < v_open_from
            and hour_start + {{ hours(1) }} <= v_to

    ),

    request_ranges as (

        -- the part of the split hour before the first whole hour, and the open tail
        select v_from as range_from, least(v_first_whole_hour, v_open_from) as range_to
        where v_from < least(v_first_whole_hour, v_open_from)

        union all

        select greatest(v_open_from, v_from) as range_from, v_to as range_to
        where v_open_from < v_to

    ),

    requests as (

        select ranged.*
        from request_ranges
        cross join lateral (
            select * from {{ ref('int_usage_logs_classified') }} as classified
            where
                classified.project_id = p_project_id
                and classified.created_at >= request_ranges.range_from
                and classified.created_at < request_ranges.range_to
            offset 0
        ) as ranged

    ),

    labelled_requests as (

        {%- for dimension in dimensions %}
        select
            requests.*,
            {%- if dimension == 'tag' %}
            request_tags.tag as value
        from {{ one_row_per_tag('requests', 'requests.tags') }}
            {%- else %}
            coalesce(requests.{{ columns[dimension] }}, '{{ no_label_value() }}') as value
        from requests
            {%- endif %}
        where p_dimension = '{{ dimension }}'
        {{ 'union all' if not loop.last }}
        {%- else %}
        select requests.*, cast(null as text) as value
        from requests
        where 1 = 0
        {%- endfor %}

    ),

    request_groups as (

        select
            value,
            usage_date,
            provider,
            model,
            service_tier,
            prompt_band,
            {{ pricing_case_sums(has_token_classes) | indent(12) }}
        from labelled_requests
        group by value, usage_date, provider, model, service_tier, prompt_band

    ),

    price_matched as (

        {{ match_model_prices('request_groups', 'usage_date', ref('int_model_prices_resolved'),
            service_tier='service_tier' if has_token_classes else none,
            prompt_band='prompt_band' if has_token_classes else none) | indent(8) }}

    ),

    priced_groups as (

        select
            *,
            {{ priced_totals(has_token_classes) | indent(12) }}
        from price_matched

    ),

    request_sketches as (

        select value, jsonb_object_agg(latency_key, key_requests) as latency_sketch
        from (
            select value, latency_key, count(*) as key_requests
            from labelled_requests
            where latency_key is not null
            group by value, latency_key
        ) as key_counts
        group by value

    ),

    open_requests as (

        select
            value_sums.*,
            request_sketches.latency_sketch
        from (
            select
                value,
                sum(total_requests) as total_requests,
                sum(cached_requests) as cached_requests,
                sum(error_requests) as error_requests,
                sum(tokens_input) as tokens_input,
                sum(tokens_output) as tokens_output,
                sum(total_cost_usd) as total_cost_usd,
                sum(total_potential_cost_usd) as total_potential_cost_usd,
                sum(total_savings_usd) as total_savings_usd,
                sum(prompt_cache_savings_usd) as prompt_cache_savings_usd,
                sum(unpriced_requests) as unpriced_requests
            from priced_groups
            group by value
        ) as value_sums
        left join request_sketches on value_sums.value = request_sketches.value

    ),

    value_parts as (

        select * from stored_days
        union all
        select * from whole_hours
        union all
        select
            value,
            total_requests,
            cached_requests,
            error_requests,
            tokens_input,
            tokens_output,
            total_cost_usd,
            total_potential_cost_usd,
            total_savings_usd,
            prompt_cache_savings_usd,
            unpriced_requests,
            latency_sketch
        from open_requests

    ),

    value_totals as (

        select
            value,
            sum(total_requests) as total_requests,
            sum(cached_requests) as cached_requests,
            sum(error_requests) as error_requests,
            sum(tokens_input) + sum(tokens_output) as total_tokens,
            sum(total_cost_usd) as total_cost_usd,
            sum(total_potential_cost_usd) as total_potential_cost_usd,
            sum(total_savings_usd) as total_savings_usd,
            sum(prompt_cache_savings_usd) as prompt_cache_savings_usd,
            sum(unpriced_requests) as unpriced_requests
        from value_parts
        group by value

    ),

    value_labels as (

        -- the top p_limit values by cost keep their name; for keys and users the rest become (other)
        select
            *,
            case
                when p_dimension <> 'tag' and row_number() over (
                    order by total_cost_usd desc nulls last, total_requests desc, value asc
                ) > p_limit then '(other)'
                else value
            end as label
        from value_totals

    ),

    label_totals as (

        select
            label,
            sum(total_requests) as total_requests,
            sum(cached_requests) as cached_requests,
            sum(error_requests) as error_requests,
            sum(total_tokens) as total_tokens,
            sum(total_cost_usd) as total_cost_usd,
            sum(total_potential_cost_usd) as total_potential_cost_usd,
            sum(total_savings_usd) as total_savings_usd,
            sum(prompt_cache_savings_usd) as prompt_cache_savings_usd,
            sum(unpriced_requests) as unpriced_requests
        from value_labels
        group by label

    ),

    named_sketch_entries as (

        -- the sketches of the values shown by name: a few dozen values, whatever the project's count
        select value_labels.label, cast(entry.key as integer) as sketch_key, cast(entry.value as bigint) as sketch_count
        from value_labels
        inner join value_parts on value_labels.value = value_parts.value
        cross join lateral jsonb_each_text(value_parts.latency_sketch) as entry
        where value_labels.label <> '(other)' or p_dimension = 'tag'

    ),

    project_sketch_entries as (

        -- (other)'s sketch is the project's minus the named values' (every request counts under one
        -- key and one user): the project's sketches of the same days, hours and requests
        select cast(entry.key as integer) as sketch_key, cast(entry.value as bigint) as sketch_count
        from (
            select latency_sketch from {{ ref('usage_aggregations_daily') }}
            where project_id = p_project_id and date >= v_first_day and date <= v_stored_to

            union all

            select latency_sketch from {{ ref('usage_aggregations_hourly') }}
            where
                project_id = p_project_id
                and hour_start >= v_hours_from
                and hour_start < v_open_from
                and hour_start + {{ hours(1) }} <= v_to
        ) as project_sketches
        cross join lateral jsonb_each_text(project_sketches.latency_sketch) as entry
        where exists (select 1 from label_totals where label = '(other)')

        union all

        select latency_key as sketch_key, count(*) as sketch_count
        from requests
        where latency_key is not null and exists (select 1 from label_totals where label = '(other)')
        group by latency_key

    ),

    other_sketch_entries as (

        select '(other)' as label, project_keys.sketch_key, project_keys.sketch_count - coalesce(named_keys.sketch_count, 0) as sketch_count
        from (
            select sketch_key, sum(sketch_count) as sketch_count from project_sketch_entries group by sketch_key
        ) as project_keys
        left join (
            select sketch_key, sum(sketch_count) as sketch_count from named_sketch_entries group by sketch_key
        ) as named_keys on project_keys.sketch_key = named_keys.sketch_key
        where project_keys.sketch_count - coalesce(named_keys.sketch_count, 0) > 0

    ),

    ranked_keys as (

        -- each label's merged sketch: counts added up per key, then ranked (docs/contract.md, section 8)
        select
            label,
            sketch_key,
            sum({{ ranked_count('sketch_count') }}) over (
                partition by label order by sketch_key rows between unbounded preceding and current row
            ) as running_count,
            sum({{ ranked_count('sketch_count') }}) over (partition by label) as known_latencies
        from (
            select label, sketch_key, sum(sketch_count) as sketch_count
            from (
                select * from named_sketch_entries
                union all
                select * from other_sketch_entries
            ) as entries
            group by label, sketch_key
        ) as label_keys

    ),

    label_percentiles as (

        select
            label,
            {%- for p in [50, 95, 99] %}
            {{ sketch_key_value(percentile_key(p)) }} as latency_p{{ p }}_ms{{ ',' if not loop.last }}
            {%- endfor %}
        from ranked_keys
        group by label

    )

    select
        label_totals.label as value,
        cast(label_totals.total_requests as bigint) as total_requests,
        cast(label_totals.cached_requests as bigint) as cached_requests,
        {{ percent_of('label_totals.cached_requests', 'label_totals.total_requests') }} as cache_hit_rate,
        cast(label_totals.error_requests as bigint) as error_requests,
        {{ percent_of('label_totals.error_requests', 'label_totals.total_requests') }} as error_rate,
        cast(label_totals.total_tokens as bigint) as total_tokens,
        label_totals.total_cost_usd,
        label_totals.total_potential_cost_usd,
        label_totals.total_savings_usd,
        label_totals.prompt_cache_savings_usd,
        cast(label_totals.unpriced_requests as bigint) as unpriced_requests,
        label_percentiles.latency_p50_ms,
        label_percentiles.latency_p95_ms,
        label_percentiles.latency_p99_ms
    from label_totals
    left join label_percentiles on label_totals.label = label_percentiles.label
    order by
        label_totals.label = '(other)' and p_dimension <> 'tag' asc,
        label_totals.total_cost_usd desc nulls last,
        label_totals.total_requests desc,
        label_totals.label asc;
end
