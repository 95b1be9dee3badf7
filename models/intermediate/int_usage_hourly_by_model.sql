{#
    The one pass over raw requests: additive sums and counts per project, UTC hour, provider and
    model (macros/aggregate_requests_by_hour.sql). Every mart rolls up from here, so no mart
    rescans usage_logs for history. Incremental: replaces whole (project_id, hour_start) buckets
    inside the rebuild window.
#}
{{
    config(
        materialized='incremental',
        incremental_strategy='bucket_replace',
        unique_key=['project_id', 'hour_start'],
        bucket_column='hour_start',
        full_refresh=false,
        on_schema_change='fail',
        indexes=[
            {'columns': ['project_id', 'hour_start', 'provider', 'model'], 'unique': true},
            {'columns': ['hour_start']},
        ],
        pre_hook=["{{ lock_aggregates() }}", "{{ set_build_work_mem() }}"],
    )
}}

{{ aggregate_requests_by_hour(incremental_time_filter('created_at', 'hour_start', 'hour')) }}
