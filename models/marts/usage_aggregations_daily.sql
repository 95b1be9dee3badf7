{#
    Usage per project and UTC date (docs/contract.md, sections 5 and 8), rolled up from the sums,
    counts and sketches of usage_by_model_daily (which rolls up int_usage_hourly_by_model).
#}

{{
    config(
        materialized=aggregate_materialization(),
        tags=['daily'],
        incremental_strategy=aggregate_incremental_strategy(),
        partition_by=aggregate_partition_by('date'),
        unique_key=['project_id', 'date'],
        bucket_column='date',
        marks_pending_rebuilds='day',
        full_refresh=false,
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['project_id', 'date'], 'unique': true},
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

with daily_by_model as (

    select * from {{ ref('usage_by_model_daily') }}
    where {{ incremental_time_filter('date', 'date', 'day', from_pending=true, on_date=true, retained='usage_by_model_daily') }}

),

{{ rollup_usage('daily_by_model', 'date', 'date') }}

select * from rolled_up
