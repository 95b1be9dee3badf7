{#
    Quarantine (docs/contract.md, section 3): every usage_logs row the aggregates exclude, with `reason`
    naming every rule it breaks. A view, so it always shows the current verdicts.
#}

{{ config(materialized='view') }}

with validated as (

    select * from {{ ref('int_usage_logs_validated') }}

),

rejected as (

    select
        request_id as id,
        rejection_reason as reason,
        project_id,
        created_at,
        provider,
        model,
        tokens_input,
        tokens_output,
        recorded_cost_usd as cost_usd,
        recorded_potential_cost_usd as potential_cost_usd,
        is_cached as cached,
        latency_ms
    from validated
    where not is_kept

)

select * from rejected
