{#
    Warning: over the recent closed days, kept raw rows that the aggregates do not hold yet (rows
    that arrived later than the lookback window). Each row is a project-day to backfill.
#}
{{ config(severity='warn') }}

with compared as (
    {{ reconciliation_rows() }}
)

select project_id, date, kept_requests, daily_requests
from compared
where kept_requests != daily_requests or kept_tokens_input != daily_tokens_input
