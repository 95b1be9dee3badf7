{#
    Every usage_logs row with its verdict (contract section 3, "Rejected"): `rejection_reason`
    names every rule the row breaks, and is NULL for a row the aggregates keep.
#}

with usage_logs as (

    select * from {{ ref('stg_proxy__usage_logs') }}

),

judged as (

    select
        *,
        nullif(concat_ws('; ',
            case when project_id is null then 'project_id is null' end,
            case when created_at is null then 'created_at is null' end,
            case
                when created_at > {{ dbt.current_timestamp() }} + {{ minutes(var('future_tolerance_minutes')) }}
                    then 'created_at is more than {{ var("future_tolerance_minutes") | int }} minutes in the future'
            end,
            case when tokens_input < 0 then 'tokens_input is negative' end,
            case when tokens_output < 0 then 'tokens_output is negative' end,
            case when recorded_cost_usd < 0 then 'cost_usd is negative' end,
            case when recorded_potential_cost_usd < 0 then 'potential_cost_usd is negative' end
        ), '') as rejection_reason

    from usage_logs

)

select * from judged
