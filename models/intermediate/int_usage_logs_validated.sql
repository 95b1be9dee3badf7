{#
    Every usage_logs row with its verdict (docs/contract.md, sections 3 and 16): `is_kept` says whether
    the aggregates keep it, and `rejection_reason` names every rule a rejected row breaks (NULL for
    a kept row). `is_kept` is plain predicates so the planner can estimate it and the text of the
    reason is only built for the rows the quarantine view reads. A label's length is measured as
    logged, so the dashboard can judge a request without normalising its names.
#}

with usage_logs as (

    select * from {{ ref('stg_proxy__usage_logs') }}

),

judged as (

    select
        *,
        (
            project_id is not null
            and created_at is not null
            and created_at <= {{ dbt.current_timestamp() }} + {{ minutes(var('future_tolerance_minutes')) }}
            and tokens_input >= 0
            and tokens_output >= 0
            and (recorded_cost_usd is null or recorded_cost_usd >= 0)
            and (recorded_potential_cost_usd is null or recorded_potential_cost_usd >= 0)
            and coalesce(char_length(logged_provider), 0) <= {{ max_label_length() }}
            and coalesce(char_length(logged_model), 0) <= {{ max_label_length() }}
        ) as is_kept,
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
            case when recorded_potential_cost_usd < 0 then 'potential_cost_usd is negative' end,
            case when char_length(logged_provider) > {{ max_label_length() }}
                then 'provider is longer than {{ max_label_length() }} characters' end,
            case when char_length(logged_model) > {{ max_label_length() }}
                then 'model is longer than {{ max_label_length() }} characters' end
        ), '') as rejection_reason

    from usage_logs

)

select * from judged
