{#
    Warning: rows of the test window quarantined in usage_logs_rejected, one result row per reason;
    the warning's count is the number of rows. Rows without a created_at belong to no window: the
    deep check counts them.
#}
{{ config(
    severity='warn', tags=['deep_check'], fail_calc='coalesce(sum(rejected_rows), 0)', warn_if='>0',
    meta={'dagster': {'ref': {'name': 'usage_logs_rejected'}}},
) }}

select reason, count(*) as rejected_rows
from {{ ref('usage_logs_rejected') }}
where {{ in_test_window('created_at', source('proxy', 'usage_logs')) }}
group by reason
