{# Error: over the recent days, usage_aggregations_hourly totals equal the hourly pass they roll up. #}
{{ config(severity='error', meta={'dagster': {'ref': {'name': 'usage_aggregations_hourly'}}}) }}

with days as (
    select
        {{ utc_date('max(hour_start)') }} - {{ var('quality_window_days') | int }} as first_day,
        {{ utc_date('max(hour_start)') }} as last_day
    from {{ ref('usage_aggregations_hourly') }}
),

{{ compare_with_hourly_by_model(
    ref('usage_aggregations_hourly'), utc_date('hour_start'), 'days', ref('int_usage_hourly_by_model')
) }}

select * from compared
