{#
    The one pass over raw requests: additive sums and counts per project, UTC hour, provider and
    model (macros/aggregation/aggregate_requests_by_hour.sql). Every mart rolls up from here, so no mart
    rescans usage_logs for history. Incremental: replaces whole (project_id, hour_start) buckets
    inside the rebuild window.

    Rows are written in hour order: the marts read the newest hours back (hourly_by_model's
    window), and in hour order those rows sit on a few pages instead of all over the table (the
    hash aggregate emits groups in no order): at 10M raw rows the daily rebuild reads ~5k pages
    instead of ~73k.
#}
{{
    config(
        materialized=aggregate_materialization(),
        tags=['hourly'],
        incremental_strategy=aggregate_incremental_strategy(),
        partition_by=aggregate_partition_by('partition_date'),
        unique_key=['project_id', 'hour_start'],
        bucket_column='hour_start',
        marks_pending_rebuilds='hour',
        records_test_window=true,
        full_refresh=false,
        create_in_parallel=true,
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['project_id', 'hour_start', 'provider', 'model'], 'unique': true},
            {'columns': ['hour_start']},
        ],
        pre_hook=[
            "{{ lock_aggregates() }}",
            "{{ set_build_work_mem() }}",
            "{{ record_batch_test_window('hour_start', 'hour') }}",
        ],
        post_hook=["{{ record_newest_bucket('hour_start') }}"],
    )
}}

with validated_requests as (

    select * from {{ ref('int_usage_logs_validated') }}
    where {{ incremental_time_filter('created_at', 'hour_start', 'hour', retained='usage_logs') }}

),

model_prices as (

    select * from {{ ref('stg_pricing__model_prices') }}

),

hourly_sums as (

    {{ aggregate_requests_by_hour('validated_requests', 'model_prices') | indent(4) }}

)

select hourly_sums.*{{ partition_date_column("hourly_sums.hour_start") }}
from hourly_sums
order by hour_start
