{#
    Error: over the days of the test window, a project's key rows and its end-user rows each add up
    to its usage_aggregations_daily row (requests, cost, errors): every request counts once under one
    key and one end user (docs/contract.md, section 15). Tag rows are not summed: a request counts
    once under each of its tags. Days without dimension rows (usage_logs without the columns) are
    not compared.
#}
{{ config(severity='error', tags=['deep_check'], meta={'dagster': {'ref': {'name': 'usage_by_dimension_daily'}}}) }}

with dimension_days as (

    select
        project_id,
        date,
        dimension,
        sum(total_requests) as total_requests,
        coalesce(sum(total_cost_usd), -1) as total_cost_usd,
        sum(error_requests) as error_requests
    from {{ ref('usage_by_dimension_daily') }}
    where dimension in ('api_key', 'end_user')
        and {{ in_test_window('date', source('proxy', 'usage_logs'), grain='day') }}
    group by project_id, date, dimension

),

daily as (

    select project_id, date, total_requests, coalesce(total_cost_usd, -1) as total_cost_usd, error_requests
    from {{ ref('usage_aggregations_daily') }}
    where {{ in_test_window('date', source('proxy', 'usage_logs'), grain='day') }}

)

select dimension_days.*, daily.total_requests as daily_requests, daily.total_cost_usd as daily_cost_usd
from dimension_days
left join daily
    on dimension_days.project_id = daily.project_id and dimension_days.date = daily.date
where
    daily.project_id is null
    or dimension_days.total_requests <> daily.total_requests
    or dimension_days.total_cost_usd <> daily.total_cost_usd
    or dimension_days.error_requests <> daily.error_requests
