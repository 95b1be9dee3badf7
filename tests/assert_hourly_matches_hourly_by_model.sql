{# Error: over the hours of the test window, usage_aggregations_hourly totals equal the hourly pass they roll up. #}
{{ config(severity='error', tags=['deep_check'], meta={'dagster': {'ref': {'name': 'usage_aggregations_hourly'}}}) }}

with window_hours as (
    {{ reconciliation_hours(ref('int_usage_hourly_by_model'), source('proxy', 'usage_logs'), raw_rows_too=false) }}
),

{{ compare_with_hourly_by_model(
    ref('usage_aggregations_hourly'), 'hour_start', 'hour_start', 'hour', 'window_hours',
    ref('int_usage_hourly_by_model')
) }}

select * from compared
