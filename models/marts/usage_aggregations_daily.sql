{# Usage per project and UTC date (docs/contract.md, section 5), rolled up from hourly sums and counts. #}

{{
    config(
        materialized='incremental',
        tags=['daily'],
        incremental_strategy='bucket_replace',
        unique_key=['project_id', 'date'],
        bucket_column='date',
        marks_pending_rebuilds='day',
        full_refresh=false,
        on_schema_change='fail',
        indexes=[
            {'columns': ['project_id', 'date'], 'unique': true},
            {'columns': ['date']},
        ],
        pre_hook=[
            "{{ lock_aggregates() }}",
            "{{ set_build_work_mem() }}",
            "{{ lock_pending_rebuild('int_usage_hourly_by_model') }}",
        ],
        post_hook=["{{ clear_pending_rebuild(ref('int_usage_hourly_by_model'), 'hour_start', 'hour') }}"],
    )
}}

with hourly_by_model as (

    select * from {{ ref('int_usage_hourly_by_model') }}
    where {{ incremental_time_filter('hour_start', 'date', 'day', from_pending=true) }}

),

{{ rollup_usage('hourly_by_model', utc_date('hour_start'), 'date') }}

select * from rolled_up
