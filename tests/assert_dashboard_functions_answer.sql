{#
    Error: the functions answer as their contracts say, on a project no row belongs to (a catalog-level
    check, cheap on every build): get_dashboard_stats returns one zero-filled row per day, oldest
    first; int_usage_local_days returns nothing; merged_latency_percentiles merges two sketches.
    Their figures are compared with the independent reference in the pytest suite.
#}
{{ config(severity='error', enabled=(target.type == 'postgres'), meta={'dagster': {'ref': {'name': 'get_dashboard_stats'}}}) }}

with dashboard as (

    select
        count(*) as days,
        count(*) filter (where total_requests = 0 and total_cost_usd = 0 and requests_by_model = '{}') as empty_days,
        min(date) as first_day,
        max(date) as last_day
    from {{ ref('get_dashboard_stats') }}('00000000-0000-0000-0000-000000000000', 7, 'Asia/Kathmandu')

),

local_days as (

    select count(*) as days
    from {{ ref('int_usage_local_days') }}(
        '00000000-0000-0000-0000-000000000000', 'Asia/Kathmandu', current_date - 6, current_date, 'infinity'
    )

),

percentiles as (

    -- latencies 10 ms (twice) and 20 ms: p50 is 10, p95 and p99 are 20
    select latency_p50_ms, latency_p95_ms, latency_p99_ms
    from {{ ref('merged_latency_percentiles') }}(array[cast('{"10": 1, "20": 1}' as jsonb), cast('{"10": 1}' as jsonb)])

)

select 'get_dashboard_stats' as function_name
from dashboard
where days <> 7 or empty_days <> 7 or last_day - first_day <> 6

union all

select 'int_usage_local_days' as function_name
from local_days
where days <> 0

union all

select 'merged_latency_percentiles' as function_name
from percentiles
where latency_p50_ms <> 10 or latency_p95_ms <> 20 or latency_p99_ms <> 20
