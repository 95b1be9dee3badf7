{#
    Reconciliation helpers for the singular tests. Every aggregate is checked against
    int_usage_hourly_by_model, and that against the kept raw rows, so together they prove
    daily = hourly = raw. Each test involves only two neighbouring layers, so a run that rebuilds
    one layer (a Dagster partition) is never judged against a layer it did not touch.
#}

{#
    Closed days of the recent window: before the open lookback of `hourly_by_model`
    (int_usage_hourly_by_model), after the oldest day `staged_requests` (stg_proxy__usage_logs) still has.
#}
{% macro reconciliation_window(hourly_by_model, staged_requests) %}

    select
        greatest(
            {{ utc_date('max(hourly.hour_start) - ' ~ hours(var('lookback_hours'))) }} - {{ var('quality_window_days') | int }},
            (select {{ utc_date('min(created_at)') }} + 1 from {{ staged_requests }})
        ) as first_day,
        {{ utc_date('max(hourly.hour_start) - ' ~ hours(var('lookback_hours'))) }} as open_day
    from {{ hourly_by_model }} as hourly

{% endmacro %}

{# Per project and day: `relation`'s totals next to `hourly_by_model`'s, over `days` (a CTE name). #}
{% macro compare_with_hourly_by_model(relation, day_expression, days, hourly_by_model) %}

    aggregate_totals as (
        select project_id, {{ day_expression }} as day, sum(total_requests) as requests,
            sum(tokens_input) as tokens_input, sum(cached_requests) as cached_requests
        from {{ relation }}
        where {{ day_expression }} >= (select first_day from {{ days }})
            and {{ day_expression }} <= (select last_day from {{ days }})
        group by project_id, {{ day_expression }}
    ),

    hourly_by_model_totals as (
        select project_id, {{ utc_date('hour_start') }} as day, sum(total_requests) as requests,
            sum(tokens_input) as tokens_input, sum(cached_requests) as cached_requests
        from {{ hourly_by_model }}
        where hour_start >= {{ utc_midnight('(select first_day from ' ~ days ~ ')') }}
            and hour_start < {{ utc_midnight('(select last_day from ' ~ days ~ ') + 1') }}
        group by project_id, {{ utc_date('hour_start') }}
    ),

    compared as (
        select
            coalesce(a.project_id, h.project_id) as project_id,
            coalesce(a.day, h.day) as day,
            coalesce(a.requests, 0) as aggregate_requests,
            coalesce(h.requests, 0) as hourly_by_model_requests
        from aggregate_totals as a
        full outer join hourly_by_model_totals as h on a.project_id = h.project_id and a.day = h.day
        where
            coalesce(a.requests, 0) != coalesce(h.requests, 0)
            or coalesce(a.tokens_input, 0) != coalesce(h.tokens_input, 0)
            or coalesce(a.cached_requests, 0) != coalesce(h.cached_requests, 0)
    )

{% endmacro %}

{#
    Per project and closed day: kept raw rows of `priced_requests` (int_usage_logs_priced) next to
    `hourly_by_model` (int_usage_hourly_by_model).
#}
{% macro kept_rows_against_hourly_by_model(priced_requests, hourly_by_model, staged_requests) %}

with window_days as (
    {{ reconciliation_window(hourly_by_model, staged_requests) }}
),

kept as (
    select project_id, usage_date as day, count(*) as requests, sum(tokens_input) as tokens_input
    from {{ priced_requests }}
    where
        created_at >= {{ utc_midnight('(select first_day from window_days)') }}
        and created_at < {{ utc_midnight('(select open_day from window_days)') }}
    group by project_id, usage_date
),

aggregated as (
    select project_id, {{ utc_date('hour_start') }} as day, sum(total_requests) as requests,
        sum(tokens_input) as tokens_input
    from {{ hourly_by_model }}
    where
        hour_start >= {{ utc_midnight('(select first_day from window_days)') }}
        and hour_start < {{ utc_midnight('(select open_day from window_days)') }}
    group by project_id, {{ utc_date('hour_start') }}
),

compared as (
    select
        coalesce(kept.project_id, aggregated.project_id) as project_id,
        coalesce(kept.day, aggregated.day) as day,
        coalesce(kept.requests, 0) as kept_requests,
        coalesce(aggregated.requests, 0) as aggregated_requests,
        coalesce(kept.tokens_input, 0) as kept_tokens_input,
        coalesce(aggregated.tokens_input, 0) as aggregated_tokens_input
    from kept
    full outer join aggregated on kept.project_id = aggregated.project_id and kept.day = aggregated.day
)

{% endmacro %}
