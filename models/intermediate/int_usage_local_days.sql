{#
    The local day, defined once (docs/contract.md, sections 6 and 9): a project's usage per calendar
    day of p_time_zone, for the days p_first_day .. p_last_day that had traffic. A local day is the
    instants from its local midnight to the next (23 or 25 hours on daylight-saving days):

    - every whole UTC hour inside it, from usage_aggregations_hourly (sums, maps and the sketch of
      the hour), for the hours before p_open_from;
    - the requests of each UTC hour a local midnight splits (zones at :30 and :45), and every request
      from p_open_from on (what the next build still rebuilds), each counted on its own local date,
      from int_usage_logs_classified, grouped and priced like the hourly pass (by service tier and
      prompt band too, where usage_logs has token classes).

    In UTC no hour is split: a UTC day is its hours and the requests from p_open_from. The dashboard
    (get_dashboard_stats) calls this for the days it does not read stored, and
    usage_aggregations_local_daily stores its days for a project's own reporting zone. The caller
    checks that the hours and requests it needs are still there (retention).
#}

{{
    config(
        materialized='sql_function',
        arguments="p_project_id uuid, p_time_zone text, p_first_day date, p_last_day date, p_open_from timestamptz",
        argument_types='uuid, text, date, date, timestamptz',
        settings={'enable_indexscan': 'off', 'enable_sort': 'off', 'plan_cache_mode': 'force_generic_plan'},
        returns="""table (
            date date,
            total_requests bigint,
            cached_requests bigint,
            error_requests bigint,
            tokens_input bigint,
            tokens_output bigint,
            total_cost_usd numeric,
            total_potential_cost_usd numeric,
            total_savings_usd numeric,
            unpriced_requests bigint,
            latency_sum_ms numeric,
            latency_count bigint,
            requests_by_provider jsonb,
            requests_by_model jsonb,
            latency_p50_ms numeric,
            latency_p95_ms numeric,
            latency_p99_ms numeric,
            tokens_cache_read bigint,
            tokens_cache_write bigint,
            tokens_reasoning bigint,
            prompt_cache_savings_usd numeric
        )""",
    )
}}

{%- set has_token_classes = usage_logs_have_token_classes() %}

{#- Plain index scans are off (settings): the requests of one project in an hour or the open tail
    are a few thousand rows, which a bitmap scan of the (project_id, created_at) index reads in
    about a millisecond; the planner prices them as random reads and prefers walking the created_at
    index through every project's rows. Sorts are off too: the planner expects a few hundred rows
    and groups by sorting where hashing is faster. -#}

#variable_conflict use_column
begin
    return query
    with local_days as (

        -- dates by whole-day offsets: nothing here depends on the session's TimeZone
        select
            p_first_day + day_offset as date,
            cast(p_first_day + day_offset as timestamp) at time zone p_time_zone as day_from,
            cast(p_first_day + day_offset + 1 as timestamp) at time zone p_time_zone as day_to
        from generate_series(0, p_last_day - p_first_day) as day_offset

    ),

    day_range as (

        select min(day_from) as range_from, max(day_to) as range_to
        from local_days

    ),

    split_hours as (

        -- the UTC hours a local midnight falls inside
        select distinct {{ utc_hour('day_from') }} as hour_start
        from local_days
        where day_from <> {{ utc_hour('day_from') }}

        union

        select {{ utc_hour('day_to') }} as hour_start
        from local_days
        where day_to <> {{ utc_hour('day_to') }}

    ),

    whole_hours as (

        select
            cast(hourly.hour_start at time zone p_time_zone as date) as date,
            hourly.*
        from {{ ref('usage_aggregations_hourly') }} as hourly
        cross join day_range
        where
            hourly.project_id = p_project_id
            and hourly.hour_start >= day_range.range_from
            and hourly.hour_start < least(day_range.range_to, p_open_from)
            and hourly.hour_start not in (select hour_start from split_hours)

    ),

    request_ranges as (

        -- one index range per split hour before the open tail, and the open tail
        select hour_start as range_from, hour_start + {{ hours(1) }} as range_to
        from split_hours
        where hour_start < p_open_from

        union all

        select greatest(p_open_from, day_range.range_from) as range_from, day_range.range_to
        from day_range
        where p_open_from < day_range.range_to

    ),

    requests as (

        -- the columns the groups below read (the names as logged: normalised once per group)
        select
            cast(ranged.created_at at time zone p_time_zone as date) as date,
            ranged.usage_date,
            ranged.logged_provider,
            ranged.logged_model,
            ranged.is_cached,
            ranged.is_error,
            ranged.tokens_input,
            ranged.tokens_output,
            {%- if has_token_classes %}
            {%- for column in token_class_columns() %}
            ranged.{{ column }},
            {%- endfor %}
            ranged.service_tier,
            ranged.prompt_band,
            {%- endif %}
            ranged.latency_ms,
            ranged.latency_key,
            ranged.recorded_cost_usd,
            ranged.recorded_potential_cost_usd,
            ranged.is_list_priced,
            ranged.is_cached_list_priced,
            ranged.is_recorded_priced
        from request_ranges
        cross join lateral (
            select * from {{ ref('int_usage_logs_classified') }} as classified
            where
                classified.project_id = p_project_id
                and classified.created_at >= request_ranges.range_from
                and classified.created_at < request_ranges.range_to
                and classified.created_at >= (select range_from from day_range)
                and classified.created_at < (select range_to from day_range)
            offset 0
        ) as ranged

    ),

    logged_groups as (

        -- grouped by the names as logged: a few dozen groups, each name normalised once below
        select
            date,
            usage_date,
            logged_provider,
            logged_model,
            {%- if has_token_classes %}
            service_tier,
            prompt_band,
            {%- endif %}
            {{ pricing_case_sums(has_token_classes) | indent(12) }}
        from requests
        group by date, usage_date, logged_provider, logged_model{{ ', service_tier, prompt_band' if has_token_classes }}

    ),

    named_groups as (

        select
            date,
            usage_date,
            {{ normalised_label('logged_provider') }} as provider,
            {{ normalised_label('logged_model') }} as model,
            {%- if has_token_classes %}
            service_tier,
            prompt_band,
            {%- endif %}
            {%- for column in pricing_case_sum_columns(has_token_classes) %}
            sum({{ column }}) as {{ column }}{{ ',' if not loop.last }}
            {%- endfor %}
        from logged_groups
        group by
            date, usage_date, {{ normalised_label('logged_provider') }}, {{ normalised_label('logged_model') }}
            {{- ', service_tier, prompt_band' if has_token_classes }}

    ),

    price_matched as (

        {{ match_model_prices('named_groups', 'usage_date', ref('int_model_prices_resolved'),
            service_tier='service_tier' if has_token_classes else none,
            prompt_band='prompt_band' if has_token_classes else none) | indent(8) }}

    ),

    priced_groups as (

        select
            *,
            {{ priced_totals(has_token_classes) | indent(12) }}
        from price_matched

    ),

    usage_parts as (

        select
            date,
            total_requests,
            cached_requests,
            error_requests,
            tokens_input,
            tokens_output,
            total_cost_usd,
            total_potential_cost_usd,
            total_savings_usd,
            unpriced_requests,
            latency_sum_ms,
            latency_count,
            tokens_cache_read,
            tokens_cache_write,
            tokens_reasoning,
            prompt_cache_savings_usd
        from whole_hours

        union all

        select
            date,
            total_requests,
            cached_requests,
            error_requests,
            tokens_input,
            tokens_output,
            total_cost_usd,
            total_potential_cost_usd,
            total_savings_usd,
            unpriced_requests,
            latency_sum_ms,
            latency_count,
            {%- if has_token_classes %}
            tokens_cache_read,
            tokens_cache_write + tokens_cache_write_1h as tokens_cache_write,
            tokens_reasoning,
            {%- else %}
            0 as tokens_cache_read,
            0 as tokens_cache_write,
            0 as tokens_reasoning,
            {%- endif %}
            prompt_cache_savings_usd
        from priced_groups

    ),

    totals as (

        select
            date,
            sum(total_requests) as total_requests,
            sum(cached_requests) as cached_requests,
            sum(error_requests) as error_requests,
            sum(tokens_input) as tokens_input,
            sum(tokens_output) as tokens_output,
            sum(total_cost_usd) as total_cost_usd,
            sum(total_potential_cost_usd) as total_potential_cost_usd,
            sum(total_savings_usd) as total_savings_usd,
            sum(unpriced_requests) as unpriced_requests,
            sum(latency_sum_ms) as latency_sum_ms,
            sum(latency_count) as latency_count,
            sum(tokens_cache_read) as tokens_cache_read,
            sum(tokens_cache_write) as tokens_cache_write,
            sum(tokens_reasoning) as tokens_reasoning,
            sum(prompt_cache_savings_usd) as prompt_cache_savings_usd
        from usage_parts
        group by date

    ),

    label_counts as (

        select hours.date, 'provider' as label_kind, entry.key as label, cast(entry.value as bigint) as requests
        from whole_hours as hours
        cross join lateral jsonb_each_text(hours.requests_by_provider) as entry

        union all

        select hours.date, 'model' as label_kind, entry.key as label, cast(entry.value as bigint) as requests
        from whole_hours as hours
        cross join lateral jsonb_each_text(hours.requests_by_model) as entry

        union all

        select date, 'provider' as label_kind, provider as label, total_requests as requests
        from priced_groups

        union all

        select date, 'model' as label_kind, model as label, total_requests as requests
        from priced_groups

    ),

    label_maps as (

        select
            date,
            coalesce(jsonb_object_agg(label, requests) filter (where label_kind = 'provider'), '{}')
                as requests_by_provider,
            coalesce(jsonb_object_agg(label, requests) filter (where label_kind = 'model'), '{}')
                as requests_by_model
        from (
            select date, label_kind, label, sum(requests) as requests
            from label_counts
            group by date, label_kind, label
            having sum(requests) > 0
        ) as summed_labels
        group by date

    ),

    sketch_entries as (

        select hours.date, cast(entry.key as integer) as sketch_key, cast(entry.value as bigint) as sketch_count
        from whole_hours as hours
        cross join lateral jsonb_each_text(hours.latency_sketch) as entry

        union all

        select date, latency_key as sketch_key, count(*) as sketch_count
        from requests
        where latency_key is not null
        group by date, latency_key

    ),

    ranked_keys as (

        -- the day's merged sketch: counts added up per key, then ranked (docs/contract.md, section 8)
        select
            date,
            sketch_key,
            sum({{ ranked_count('sketch_count') }}) over (
                partition by date order by sketch_key rows between unbounded preceding and current row
            ) as running_count,
            sum({{ ranked_count('sketch_count') }}) over (partition by date) as known_latencies
        from (
            select date, sketch_key, sum(sketch_count) as sketch_count
            from sketch_entries
            group by date, sketch_key
        ) as day_keys

    ),

    day_percentiles as (

        select
            date,
            {%- for p in [50, 95, 99] %}
            {{ sketch_key_value(percentile_key(p)) }} as latency_p{{ p }}_ms{{ ',' if not loop.last }}
            {%- endfor %}
        from ranked_keys
        group by date

    ),

    final as (

        select
            totals.date,
            cast(totals.total_requests as bigint) as total_requests,
            cast(totals.cached_requests as bigint) as cached_requests,
            cast(totals.error_requests as bigint) as error_requests,
            cast(totals.tokens_input as bigint) as tokens_input,
            cast(totals.tokens_output as bigint) as tokens_output,
            totals.total_cost_usd,
            totals.total_potential_cost_usd,
            totals.total_savings_usd,
            cast(totals.unpriced_requests as bigint) as unpriced_requests,
            totals.latency_sum_ms,
            cast(totals.latency_count as bigint) as latency_count,
            label_maps.requests_by_provider,
            label_maps.requests_by_model,
            day_percentiles.latency_p50_ms,
            day_percentiles.latency_p95_ms,
            day_percentiles.latency_p99_ms,
            cast(totals.tokens_cache_read as bigint) as tokens_cache_read,
            cast(totals.tokens_cache_write as bigint) as tokens_cache_write,
            cast(totals.tokens_reasoning as bigint) as tokens_reasoning,
            totals.prompt_cache_savings_usd
        from totals
        inner join label_maps on totals.date = label_maps.date
        left join day_percentiles on totals.date = day_percentiles.date
        where totals.total_requests > 0

    )

    select * from final;
end
