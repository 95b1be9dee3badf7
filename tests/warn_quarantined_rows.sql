{# Warning: rows quarantined in usage_logs_rejected, one result row per reason; the warning's count is the number of rows. #}
{{ config(severity='warn', fail_calc='coalesce(sum(rejected_rows), 0)', warn_if='>0') }}

select reason, count(*) as rejected_rows
from {{ ref('usage_logs_rejected') }}
group by reason
