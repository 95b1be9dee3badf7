{# Error: over the recent closed days, daily totals must equal the sum of their hours, and never exceed the kept raw rows. #}
{{ config(severity='error') }}

with compared as (
    {{ reconciliation_rows() }}
)

select *
from compared
where
    hourly_requests != daily_requests
    or hourly_tokens_input != daily_tokens_input
    or hourly_requests > kept_requests
