{#
    Per project and closed UTC day of the recent window: kept raw requests next to what hourly
    and daily hold. Closed days end before the open lookback window (rows there may still be on
    their way); days before the oldest remaining raw row are skipped (retention deleted them).
#}
{% macro reconciliation_rows() %}

with bounds as (

    select
        {{ utc_date('max(hour_start) - ' ~ hours(var('lookback_hours'))) }} as open_day,
        {{ utc_date('max(hour_start) - ' ~ hours(var('lookback_hours'))) }}
            - {{ var('quality_window_days') | int }} as first_day
    from {{ ref('usage_aggregations_hourly') }}

),

raw_retained_from as (

    select {{ utc_date('min(created_at)') }} + 1 as first_full_day
    from {{ ref('stg_proxy__usage_logs') }}

),

window_days as (

    select greatest(bounds.first_day, raw_retained_from.first_full_day) as first_day, bounds.open_day
    from bounds cross join raw_retained_from

),

kept as (

    select project_id, usage_date as date, count(*) as requests, sum(tokens_input) as tokens_input
    from {{ ref('int_usage_logs_priced') }}
    where
        created_at >= {{ utc_midnight('(select first_day from window_days)') }}
        and created_at < {{ utc_midnight('(select open_day from window_days)') }}
    group by project_id, usage_date

),

hourly as (

    select project_id, {{ utc_date('hour_start') }} as date, sum(total_requests) as requests,
        sum(tokens_input) as tokens_input
    from {{ ref('usage_aggregations_hourly') }}
    where
        hour_start >= {{ utc_midnight('(select first_day from window_days)') }}
        and hour_start < {{ utc_midnight('(select open_day from window_days)') }}
    group by project_id, {{ utc_date('hour_start') }}

),

daily as (

    select project_id, date, total_requests as requests, tokens_input
    from {{ ref('usage_aggregations_daily') }}
    where date >= (select first_day from window_days) and date < (select open_day from window_days)

),

compared as (

    select
        coalesce(kept.project_id, hourly.project_id, daily.project_id) as project_id,
        coalesce(kept.date, hourly.date, daily.date) as date,
        coalesce(kept.requests, 0) as kept_requests,
        coalesce(hourly.requests, 0) as hourly_requests,
        coalesce(daily.requests, 0) as daily_requests,
        coalesce(kept.tokens_input, 0) as kept_tokens_input,
        coalesce(hourly.tokens_input, 0) as hourly_tokens_input,
        coalesce(daily.tokens_input, 0) as daily_tokens_input
    from kept
    full outer join hourly on kept.project_id = hourly.project_id and kept.date = hourly.date
    full outer join daily
        on coalesce(kept.project_id, hourly.project_id) = daily.project_id
        and coalesce(kept.date, hourly.date) = daily.date

)

select * from compared

{% endmacro %}
