{# Error: over the recent closed days, the hourly pass never holds more requests than the kept raw rows (no double counting). #}
{{ config(severity='error', meta={'dagster': {'ref': {'name': 'int_usage_hourly_by_model'}}}) }}

{{ kept_rows_against_hourly_by_model(
    ref('int_usage_logs_priced'), ref('int_usage_hourly_by_model'), ref('stg_proxy__usage_logs')
) }}

select * from compared
where aggregated_requests > kept_requests
