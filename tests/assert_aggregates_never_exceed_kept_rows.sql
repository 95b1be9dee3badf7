{# Error: over the closed hours of the test window, the hourly pass never holds more requests than the kept raw rows (no double counting). #}
{{ config(severity='error', tags=['deep_check'], meta={'dagster': {'ref': {'name': 'int_usage_hourly_by_model'}}}) }}

{{ kept_rows_against_hourly_by_model(
    ref('int_usage_logs_validated'), ref('int_usage_hourly_by_model'), source('proxy', 'usage_logs')
) }}

select * from compared
where aggregated_requests > kept_requests
