{#
    Token sums per project, UTC date, service tier and prompt band (docs/contract.md, sections 10
    and 14), rolled up from int_usage_hourly_by_model: what model_cost_counterfactual_monthly
    prices at a candidate's own class, tier and threshold prices. A candidate's threshold is one of
    the price list's, and a band says which of them a request's prompt exceeds, so the sums of the
    bands at or above a candidate's threshold are exactly its requests above that threshold.
    Retained like the daily tables, so a month stays priceable after its hourly rows are gone.
#}

{{
    config(
        materialized=aggregate_materialization(),
        tags=['daily'],
        incremental_strategy=aggregate_incremental_strategy(),
        partition_by=aggregate_partition_by('date'),
        unique_key=['project_id', 'date'],
        bucket_column='date',
        full_refresh=false,
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['project_id', 'date', 'service_tier', 'prompt_band'], 'unique': true},
            {'columns': ['date']},
        ],
        pre_hook=[
            "{{ lock_aggregates() }}",
            "{{ set_build_work_mem() }}",
            "{{ lock_pending_rebuild() }}",
        ],
        post_hook=["{{ clear_pending_rebuild() }}"],
    )
}}

with hourly_by_model as (

    select * from {{ ref('int_usage_hourly_by_model') }}
    where {{ incremental_time_filter('hour_start', 'date', 'day', from_pending=true, retained='int_usage_hourly_by_model') }}

),

daily_sums as (

    select
        project_id,
        {{ utc_date('hour_start') }} as date,
        service_tier,
        prompt_band,
        cast(sum(total_requests) as bigint) as total_requests,
        sum(total_cost_usd) as total_cost_usd,
        {%- for column in ['tokens_input', 'tokens_output'] + token_class_columns() %}
        cast(sum({{ column }}) as bigint) as {{ column }},
        cast(sum(cached_{{ column }}) as bigint) as cached_{{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from hourly_by_model
    group by project_id, {{ utc_date('hour_start') }}, service_tier, prompt_band

)

select * from daily_sums
