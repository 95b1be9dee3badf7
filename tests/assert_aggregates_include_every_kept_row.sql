{#
    Warning: over the recent closed days, kept raw rows the aggregates do not hold (rows that arrived
    later than the lookback window). Each result is a project-day to rebuild with a range.
#}
{{ config(severity='warn', meta={'dagster': {'ref': {'name': 'int_usage_hourly_by_model'}}}) }}

{{ kept_rows_against_hourly_by_model(
    ref('int_usage_logs_priced'), ref('int_usage_hourly_by_model'), ref('stg_proxy__usage_logs')
) }}

select * from compared
where kept_requests != aggregated_requests or kept_tokens_input != aggregated_tokens_input
