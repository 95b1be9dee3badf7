{# Usage per project and UTC hour (docs/contract.md, section 5), rolled up from int_usage_hourly_by_model. #}

{{
    config(
        materialized=aggregate_materialization(),
        tags=['hourly'],
        incremental_strategy=aggregate_incremental_strategy(),
        partition_by=aggregate_partition_by('partition_date'),
        unique_key=['project_id', 'hour_start'],
        bucket_column='hour_start',
        full_refresh=false,
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['project_id', 'hour_start'], 'unique': true},
            {'columns': ['hour_start']},
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
    where {{ incremental_time_filter('hour_start', 'hour_start', 'hour', from_pending=true, retained='int_usage_hourly_by_model') }}

),

{{ rollup_usage('hourly_by_model', 'hour_start', 'hour_start') }}

select rolled_up.*{{ partition_date_column("rolled_up.hour_start") }}
from rolled_up
