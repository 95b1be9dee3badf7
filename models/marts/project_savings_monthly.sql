{# Cache savings per project and UTC month (docs/contract.md, section 5), rolled up from the daily totals. #}

{{
    config(
        materialized=aggregate_materialization(),
        tags=['daily'],
        incremental_strategy=aggregate_incremental_strategy(),
        partition_by=aggregate_partition_by('month'),
        unique_key=['project_id', 'month'],
        bucket_column='month',
        full_refresh=false,
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['project_id', 'month'], 'unique': true},
        ],
        pre_hook=[
            "{{ lock_aggregates() }}",
            "{{ set_build_work_mem() }}",
            "{{ lock_pending_rebuild() }}",
        ],
        post_hook=["{{ clear_pending_rebuild() }}"],
    )
}}

with daily_usage as (

    select * from {{ ref('usage_aggregations_daily') }}
    where {{ incremental_time_filter('date', 'month', 'month', from_pending=true, on_date=true, retained='usage_aggregations_daily') }}

),

monthly_totals as (

    select
        project_id,
        {{ month_start('date') }} as month,
        sum(total_requests) as total_requests,
        sum(cached_requests) as cached_requests,
        sum(total_cost_usd) as total_cost_usd,
        sum(total_potential_cost_usd) as total_potential_cost_usd,
        sum(total_savings_usd) as total_savings_usd
    from daily_usage
    group by project_id, {{ month_start('date') }}

),

final as (

    select
        project_id,
        month,
        cast(total_requests as bigint) as total_requests,
        cast(cached_requests as bigint) as cached_requests,
        {{ percent_of('cached_requests', 'total_requests') }} as cache_hit_rate,
        total_cost_usd,
        total_potential_cost_usd,
        total_savings_usd,
        {{ percent_of('total_savings_usd', 'total_potential_cost_usd') }} as savings_pct
    from monthly_totals

)

select * from final
