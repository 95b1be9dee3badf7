{#
    Kept requests of `requests` (int_usage_logs_validated, or a CTE over it) matching
    `request_filter` (SQL over its columns), aggregated per project, UTC hour, provider and model
    and priced from `prices` (stg_pricing__model_prices, or a CTE over it): the query behind
    int_usage_hourly_by_model, and the one get_dashboard_stats runs over the requests no build has
    aggregated yet, so both apply the contract's rules with the same code.

    Pricing happens after the pass, on the hourly sums: a price is constant for a provider, model
    and UTC date, so the list price of a group of rows is the price times their token sums
    (exact in numeric). The pass therefore only splits every sum by the pricing case the contract
    gives each row (docs/contract.md, section 4), and the price is looked up once per group:
      recorded    - not cached with a recorded cost, or cached with a recorded potential > 0
      list        - not cached without a recorded cost: cost = potential = list price
      cached_list - cached without a recorded potential: cost = recorded or 0, potential = list price
    int_usage_logs_priced applies the same rules row by row (for backfill-potential-cost).

    `group_by_logged_labels`: group by the provider and model names as logged and normalise each
    group's names afterwards (then add up the groups whose names normalise alike), instead of
    normalising every row's. The same figures; the dashboard's few thousand rows of one project fall
    into a few dozen groups, and trimming and lower-casing per row was half of its time (make bench).
    A build's pass has about as many groups as rows, so it normalises per row.
#}
{% macro aggregate_requests_by_hour(requests, prices, request_filter='true', group_by_logged_labels=false, extra_groups={}) -%}
{#- extra_groups: {alias: SQL over the requests' columns} grouped by beside the hour (the dashboard's local day) -#}
{%- set extra = extra_groups.keys() | list -%}
{%- set extra_select = extra | map('string') | join(', ') ~ (', ' if extra else '') -%}
{%- set counted_keys = not group_by_logged_labels and aggregates_from_group_lists() -%}
{%- set keyed_pass = not group_by_logged_labels and not counted_keys -%}
with kept_requests as (

    select * from {{ requests }}
    where
        is_kept
        and {{ request_filter }}

),

classified as (

    select
        project_id,
        {{ utc_hour('created_at') }} as hour_start,
        {%- for alias, expression in extra_groups.items() %}
        {{ expression }}{{ ' as ' ~ alias if expression != alias }},
        {%- endfor %}
        {%- if group_by_logged_labels %}
        logged_provider as provider,
        logged_model as model,
        {%- else %}
        provider,
        model,
        {%- endif %}
        is_cached,
        tokens_input,
        tokens_output,
        latency_ms,
        {#- var latency_sketches: false builds no sketch (the benchmark's baseline for what they cost) #}
        {{ latency_sketch_key('latency_ms') if var('latency_sketches', true) else 'cast(null as integer)' }} as latency_key,
        recorded_cost_usd,
        recorded_potential_cost_usd,
        -- the pricing case as booleans (exactly one is true): every sum below tests one per row
        (not is_cached and recorded_cost_usd is null) as is_list_priced,
        (is_cached and not coalesce(recorded_potential_cost_usd > 0, false)) as is_cached_list_priced
    from kept_requests

),

pricing_cases as (

    select
        *,
        not (is_list_priced or is_cached_list_priced) as is_recorded_priced
        {%- if counted_keys and var('latency_sketches', true) %},
        -- how many of its group's requests have the row's sketch key; the window sorts by the
        -- group's columns and then the key, so the grouping below reads that sort as it is
        count(*) over (partition by project_id, hour_start, {{ extra_select }}provider, model, latency_key)
            as latency_key_requests
        {%- endif %}
    from classified

),

key_sums as (

    -- sums per group, and the group's latency sketch (macros/aggregation/latency_sketch.sql): where
    -- the engine's map keeps one of equal keys (aggregates_from_group_lists), straight from each
    -- row's key and its count in the group (latency_key_requests); else summed per group and key
    -- and added up per group next. Grouping by key as well makes almost a group per row (19 of 20
    -- at 1M rows) and adds every sum up twice; a list of the group's keys counted afterwards cost a
    -- subquery per group (docs/performance.md). With group_by_logged_labels (a few thousand rows
    -- of one project, nearly a group per row and key) the sums are per group only and the keys
    -- are counted apart, in key_counts.
    select
        project_id,
        hour_start,
        {{ extra_select }}provider,
        model,
        {%- if keyed_pass %}
        latency_key,
        {%- endif %}
        count(*) as total_requests,
        {{ count_if('is_cached') }} as cached_requests,
        sum(tokens_input) as tokens_input,
        sum(tokens_output) as tokens_output,
        {{ sum_if('tokens_input', 'is_cached') }} as cached_tokens_input,
        {{ sum_if('tokens_output', 'is_cached') }} as cached_tokens_output,
        sum(latency_ms) as latency_sum_ms,
        count(latency_ms) as latency_count,
        -- recorded: cost and potential straight from the row
        {{ sum_if('coalesce(recorded_cost_usd, 0)', 'is_recorded_priced') }} as recorded_cost_usd,
        {{ sum_if(
            'case when is_cached then recorded_potential_cost_usd else recorded_cost_usd end', 'is_recorded_priced'
        ) }} as recorded_potential_cost_usd,
        -- list: priced from the token sums below (read only when list_requests > 0)
        {{ count_if('is_list_priced') }} as list_requests,
        {{ sum_if('tokens_input', 'is_list_priced') }} as list_tokens_input,
        {{ sum_if('tokens_output', 'is_list_priced') }} as list_tokens_output,
        -- cached_list: cost recorded (or 0), potential priced from the token sums below
        {{ count_if('is_cached_list_priced') }} as cached_list_requests,
        {{ sum_if('coalesce(recorded_cost_usd, 0)', 'is_cached_list_priced') }} as cached_list_cost_usd,
        {{ sum_if('tokens_input', 'is_cached_list_priced') }} as cached_list_tokens_input,
        {{ sum_if('tokens_output', 'is_cached_list_priced') }} as cached_list_tokens_output
        {%- if counted_keys and var('latency_sketches', true) %},
        {{ sketch_from_row_key_counts('latency_key', 'latency_key_requests') }} as latency_sketch
        {%- endif %}
    from pricing_cases
    group by project_id, hour_start, {{ extra_select }}provider, model{{ ', latency_key' if keyed_pass }}

),
{%- set counts = ['total_requests', 'cached_requests', 'latency_count', 'list_requests', 'cached_list_requests'] %}
{%- set sums = [
    'tokens_input', 'tokens_output', 'cached_tokens_input', 'cached_tokens_output', 'latency_sum_ms',
    'recorded_cost_usd', 'recorded_potential_cost_usd', 'list_tokens_input', 'list_tokens_output',
    'cached_list_cost_usd', 'cached_list_tokens_input', 'cached_list_tokens_output',
] %}
{%- if group_by_logged_labels %}

key_counts as (

    select
        project_id,
        hour_start,
        {{ extra_select }}provider,
        model,
        latency_key,
        count(*) as latency_count
    from pricing_cases
    where latency_key is not null
    group by project_id, hour_start, {{ extra_select }}provider, model, latency_key

),

group_sketches as (

    -- the names as the aggregates key them; groups whose names normalise alike are added up, so
    -- each sketch key stays unique in its group
    select
        project_id,
        hour_start,
        {{ extra_select }}provider,
        model,
        {{ sketch_from_counts('latency_key', 'latency_count') }} as latency_sketch
    from (
        select
            project_id,
            hour_start,
            {{ extra_select }}{{ normalised_label('provider') }} as provider,
            {{ normalised_label('model') }} as model,
            latency_key,
            sum(latency_count) as latency_count
        from key_counts
        group by
            project_id, hour_start, {{ extra_select }}{{ normalised_label('provider') }},
            {{ normalised_label('model') }}, latency_key
    ) as relabelled_key_counts
    group by project_id, hour_start, {{ extra_select }}provider, model

),

relabelled_key_sums as (

    -- the names as the aggregates key them, once per group of logged names
    select
        project_id,
        hour_start,
        {{ extra_select }}{{ normalised_label('provider') }} as provider,
        {{ normalised_label('model') }} as model,
        {%- for column in counts %}
        cast(sum({{ column }}) as bigint) as {{ column }},
        {%- endfor %}
        {%- for column in sums %}
        sum({{ column }}) as {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from key_sums
    group by
        project_id, hour_start, {{ extra_select }}{{ normalised_label('provider') }}, {{ normalised_label('model') }}

),

hourly_sums as (

    select
        relabelled_key_sums.*,
        group_sketches.latency_sketch
    from relabelled_key_sums
    left join group_sketches
        on relabelled_key_sums.project_id = group_sketches.project_id
        and relabelled_key_sums.hour_start = group_sketches.hour_start
        {%- for alias in extra %}
        and relabelled_key_sums.{{ alias }} = group_sketches.{{ alias }}
        {%- endfor %}
        and relabelled_key_sums.provider = group_sketches.provider
        and relabelled_key_sums.model = group_sketches.model

),
{%- elif counted_keys %}

hourly_sums as (

    select
        project_id,
        hour_start,
        {{ extra_select }}provider,
        model,
        {%- for column in counts %}
        cast({{ column }} as bigint) as {{ column }},
        {%- endfor %}
        {%- for column in sums %}
        {{ column }},
        {%- endfor %}
        {#- without sketches (the benchmark's baseline), no key counts either #}
        {{ 'latency_sketch' if var('latency_sketches', true) else 'cast(null as jsonb) as latency_sketch' }}
    from key_sums

),
{%- else %}

hourly_sums as (

    select
        project_id,
        hour_start,
        {{ extra_select }}provider,
        model,
        {%- for column in counts %}
        cast(sum({{ column }}) as bigint) as {{ column }},
        {%- endfor %}
        {%- for column in sums %}
        sum({{ column }}) as {{ column }},
        {%- endfor %}
        {{ sketch_from_counts('latency_key', 'latency_count') }} as latency_sketch
    from key_sums
    group by project_id, hour_start, {{ extra_select }}provider, model

),
{%- endif %}

dated_sums as (

    select
        *,
        {{ utc_date('hour_start') }} as usage_date
    from hourly_sums

),

priced_sums as (

    {{ match_model_prices('dated_sums', 'usage_date', prices) }}

),

list_priced as (

    select
        *,
        case when list_requests > 0 then
            {{ usd_for_tokens('list_tokens_input', 'input_usd_per_1m') }}
            + {{ usd_for_tokens('list_tokens_output', 'output_usd_per_1m') }}
        end as list_cost_usd,
        case when cached_list_requests > 0 then
            {{ usd_for_tokens('cached_list_tokens_input', 'input_usd_per_1m') }}
            + {{ usd_for_tokens('cached_list_tokens_output', 'output_usd_per_1m') }}
        end as cached_list_potential_usd,
        (input_usd_per_1m is null or output_usd_per_1m is null) as is_unpriced
    from priced_sums

),

final as (

    select
        project_id,
        hour_start,
        {{ extra_select }}provider,
        model,
        total_requests,
        cached_requests,
        -- numeric, as int_usage_hourly_by_model has always stored these sums (an existing table keeps its types)
        cast(tokens_input as {{ count_sum_type() }}) as tokens_input,
        cast(tokens_output as {{ count_sum_type() }}) as tokens_output,
        {{ add_known('recorded_cost_usd', add_known('list_cost_usd', 'cached_list_cost_usd')) }} as total_cost_usd,
        {{ add_known('recorded_potential_cost_usd', add_known('list_cost_usd', 'cached_list_potential_usd')) }}
            as total_potential_cost_usd,
        {{ add_known(
            'recorded_potential_cost_usd - recorded_cost_usd',
            add_known('list_cost_usd - list_cost_usd', 'cached_list_potential_usd - cached_list_cost_usd')
        ) }} as total_savings_usd,
        case when is_unpriced then list_requests + cached_list_requests else 0 end as unpriced_requests,
        cast(latency_sum_ms as {{ count_sum_type() }}) as latency_sum_ms,
        latency_count,
        cast(coalesce(cached_tokens_input, 0) as {{ count_sum_type() }}) as cached_tokens_input,
        cast(coalesce(cached_tokens_output, 0) as {{ count_sum_type() }}) as cached_tokens_output,
        latency_sketch
    from list_priced

)

select * from final
{%- endmacro %}
