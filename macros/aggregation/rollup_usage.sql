{#
    Roll rows of int_usage_hourly_by_model (already filtered) up to `bucket_column`: the contract's
    usage columns for usage_aggregations_hourly and _daily, from additive sums and counts only.
    With `sketch_rows` (a relation or CTE with project_id, `bucket_column` and latency_sketch), the
    percentiles merge those sketches instead of the input rows' (the dashboard merges one sketch per
    hour, not one per model and hour); `keep_sketch=false` leaves the merged map out (NULL).
#}
{% macro rollup_usage(hourly_rows, bucket_expression, bucket_column, inline_input=true, sketch_rows=none, keep_sketch=true) -%}
{#- each bucket's sketches merged in its own row where the engine does (aggregates_from_group_lists) and they are the input rows' -#}
{%- set per_group = sketch_rows is none and aggregates_from_group_lists() %}
{#- the provider and model maps from the bucket's own lists, likewise (no two more groupings and joins) -#}
{%- set maps_per_group = aggregates_from_group_lists() %}

{#- a table's rows are cheaper read four times than written out once; a query's (the dashboard's) are not -#}
usage_rows as {{ not_materialized() if inline_input else '' }} (

    select
        project_id,
        {{ bucket_expression }}{{ ' as ' ~ bucket_column if bucket_expression != bucket_column }},
        provider,
        model,
        {{ hourly_sum_columns() | join(',\n        ') }}
    from {{ hourly_rows }}

),

totals as (

    select
        project_id,
        {{ bucket_column }},
        sum(total_requests) as total_requests,
        sum(cached_requests) as cached_requests,
        sum(tokens_input) as tokens_input,
        sum(tokens_output) as tokens_output,
        sum(total_cost_usd) as total_cost_usd,
        sum(total_potential_cost_usd) as total_potential_cost_usd,
        sum(total_savings_usd) as total_savings_usd,
        sum(latency_sum_ms) as latency_sum_ms,
        sum(latency_count) as latency_count,
        sum(unpriced_requests) as unpriced_requests,
        sum(cached_tokens_input) as cached_tokens_input,
        sum(cached_tokens_output) as cached_tokens_output
        {%- if per_group %}{{ sketch_list_column() }}{% endif %}
        {%- if maps_per_group %},
        array_agg(provider) as providers,
        array_agg(model) as models,
        array_agg(total_requests) as requests_per_row
        {%- endif %}
    from usage_rows
    group by project_id, {{ bucket_column }}

),
{%- if not per_group %}

{{ merge_latency_sketches(sketch_rows or 'usage_rows', ['project_id', bucket_column], 'bucket', keep_sketch=keep_sketch) }}
{%- endif %}

{%- if not maps_per_group %}

provider_counts as (

    select project_id, {{ bucket_column }}, provider, sum(total_requests) as requests
    from usage_rows
    group by project_id, {{ bucket_column }}, provider

),

model_counts as (

    select project_id, {{ bucket_column }}, model, sum(total_requests) as requests
    from usage_rows
    group by project_id, {{ bucket_column }}, model

),

provider_maps as (

    select project_id, {{ bucket_column }}, {{ counts_to_map('provider', 'requests') }} as requests_by_provider
    from provider_counts
    group by project_id, {{ bucket_column }}

),

model_maps as (

    select project_id, {{ bucket_column }}, {{ counts_to_map('model', 'requests') }} as requests_by_model
    from model_counts
    group by project_id, {{ bucket_column }}

),
{%- endif %}

rolled_up as (

    select
        totals.project_id,
        totals.{{ bucket_column }},
        cast(totals.total_requests as bigint) as total_requests,
        cast(totals.cached_requests as bigint) as cached_requests,
        {{ percent_of('totals.cached_requests', 'totals.total_requests') }} as cache_hit_rate,
        cast(totals.tokens_input as bigint) as tokens_input,
        cast(totals.tokens_output as bigint) as tokens_output,
        cast(totals.tokens_input + totals.tokens_output as bigint) as total_tokens,
        totals.total_cost_usd,
        totals.total_potential_cost_usd,
        totals.total_savings_usd,
        {{ ratio_2dp('totals.latency_sum_ms', 'totals.latency_count') }} as avg_latency_ms,
        {%- if maps_per_group %}
        {{ map_from_lists('totals.providers', 'totals.requests_per_row') }} as requests_by_provider,
        {{ map_from_lists('totals.models', 'totals.requests_per_row') }} as requests_by_model,
        {%- else %}
        provider_maps.requests_by_provider,
        model_maps.requests_by_model,
        {%- endif %}
        cast(totals.unpriced_requests as bigint) as unpriced_requests,
        bucket_sketches.latency_p50_ms,
        bucket_sketches.latency_p95_ms,
        bucket_sketches.latency_p99_ms,
        cast(totals.cached_tokens_input as bigint) as cached_tokens_input,
        cast(totals.cached_tokens_output as bigint) as cached_tokens_output,
        bucket_sketches.latency_sketch,
        totals.latency_sum_ms,
        cast(totals.latency_count as bigint) as latency_count
    from totals
    {%- if not maps_per_group %}
    inner join provider_maps
        on totals.project_id = provider_maps.project_id
        and totals.{{ bucket_column }} = provider_maps.{{ bucket_column }}
    inner join model_maps
        on totals.project_id = model_maps.project_id
        and totals.{{ bucket_column }} = model_maps.{{ bucket_column }}
    {%- endif %}
    {%- if per_group %}
    {{ join_merged_sketches('bucket', 'totals', ['project_id', bucket_column], keep_sketch=keep_sketch) }}
    {%- else %}
    left join bucket_sketches
        on totals.project_id = bucket_sketches.project_id
        and totals.{{ bucket_column }} = bucket_sketches.{{ bucket_column }}
    {%- endif %}

)

{%- endmacro %}


{# The additive columns of int_usage_hourly_by_model (beside its grain) that every roll-up adds up. #}
{% macro hourly_sum_columns() -%}
    {{ return([
        'total_requests', 'cached_requests', 'tokens_input', 'tokens_output', 'total_cost_usd',
        'total_potential_cost_usd', 'total_savings_usd', 'latency_sum_ms', 'latency_count', 'unpriced_requests',
        'cached_tokens_input', 'cached_tokens_output', 'latency_sketch',
    ]) }}
{%- endmacro %}


{# The map {name: summed count} of two parallel lists (names, counts), as counts_to_map over their pairs. #}
{% macro map_from_lists(names, counts) -%}
    {{ return(adapter.dispatch('map_from_lists', 'watchllm_analytics')(names, counts)) }}
{%- endmacro %}
{% macro default__map_from_lists(names, counts) -%}
    (
        select {{ counts_to_map('listed.name', 'listed.requests') }}
        from (
            select pairs.name, sum(pairs.requests) as requests
            from unnest({{ names }}, {{ counts }}) as pairs (name, requests)
            group by pairs.name
        ) as listed
    )
{%- endmacro %}