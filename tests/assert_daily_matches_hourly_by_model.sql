{# Error: over the recent days the daily table holds, daily totals equal the hourly pass they roll up. #}
{{ config(severity='error', meta={'dagster': {'ref': {'name': 'usage_aggregations_daily'}}}) }}

with days as (
    select
        max(date) - {{ var('quality_window_days') | int }} as first_day,
        max(date) as last_day
    from {{ ref('usage_aggregations_daily') }}
),

{{ compare_with_hourly_by_model(ref('usage_aggregations_daily'), 'date', 'days', ref('int_usage_hourly_by_model')) }}

select * from compared
