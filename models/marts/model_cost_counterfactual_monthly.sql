{#
    What each project's traffic of a UTC month would have cost at another model's list prices
    (docs/contract.md, section 10), for every candidate model. Computed from additive sums: a
    candidate's price is constant over each of its price periods (whole UTC days), so price x the
    token sum of the days a period covers = the sum of price x tokens per request, exactly. The
    month is cut into segments at every candidate's price boundaries inside it; each project's daily
    sums are added up once per segment (usually one: the whole month), and each candidate prices
    a segment with the one period that covers it. A segment a candidate has no price for is left
    out of every money column and of priced_requests. The cost is one pass over the month's daily
    rows (and one over its per-model days, for the candidates), not one per candidate. Incremental like project_savings_monthly: the months whose days
    usage_aggregations_daily replaced are rebuilt whole.

    Where usage_logs has token classes (section 14), the days are read per service tier and prompt
    band (int_usage_daily_by_tier_and_band) and each candidate prices every class at its own price
    of that tier and of the side of its own threshold the band is on.
#}
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
            {'columns': ['project_id', 'month', 'provider', 'model'], 'unique': true},
            {'columns': ['month']},
        ],
        pre_hook=[
            "{{ lock_aggregates() }}",
            "{{ set_build_work_mem() }}",
            "{{ lock_pending_rebuild() }}",
        ],
        post_hook=["{{ clear_pending_rebuild() }}"],
    )
}}

{%- set has_token_classes = usage_logs_have_token_classes() %}
{%- set class_sums = token_class_columns() if has_token_classes else [] %}
{%- set class_usage = ref('int_usage_daily_by_tier_and_band') %}

with daily_usage as (

    -- the sums this needs, not the days' maps and sketches
    select
        project_id,
        date,
        {%- if has_token_classes %}
        service_tier,
        prompt_band,
        {%- for column in class_sums %}
        {{ column }},
        cached_{{ column }},
        {%- endfor %}
        {%- endif %}
        total_requests,
        tokens_input,
        tokens_output,
        cached_tokens_input,
        cached_tokens_output,
        total_cost_usd
    {%- if has_token_classes %}
    from {{ class_usage }}
    where {{ incremental_time_filter('date', 'month', 'month', from_pending=true, on_date=true, retained='usage_aggregations_daily') }}
    {%- else %}
    from {{ ref('usage_aggregations_daily') }}
    where {{ incremental_time_filter('date', 'month', 'month', from_pending=true, on_date=true, retained='usage_aggregations_daily') }}
    {%- endif %}

),

models_used as (

    -- the models each rebuilt month's traffic used (one pass over those months' per-model days)
    select distinct
        {{ month_start('date') }} as month,
        provider,
        model
    from {{ ref('usage_by_model_daily') }}
    where {{ incremental_time_filter('date', 'month', 'month', from_pending=true, on_date=true, retained='usage_by_model_daily') }}

),

model_prices as (

    select * from {{ ref('int_model_prices_resolved') }}
    where
        model_pattern is null
        {%- if not has_token_classes %}
        -- without token classes every request is the standard tier below any threshold
        and service_tier = 'standard'
        and above_input_tokens = 0
        {%- endif %}

),

months as (

    select distinct {{ month_start('date') }} as month
    from daily_usage

),

candidates as (

    -- every exact-name priced model that some project used in the month, plus var counterfactual_models
    select distinct
        models_used.month,
        models_used.provider,
        models_used.model
    from models_used
    inner join model_prices
        on models_used.provider = model_prices.provider and models_used.model = model_prices.model

    {%- for name in var('counterfactual_models', []) %}
    {%- set parts = name.split('/', 1) %}
    {%- if parts | length != 2 or not parts[0] or not parts[1] or not modules.re.match('^[a-z0-9][a-z0-9._:/@-]*$', name) %}
    {{ exceptions.raise_compiler_error("var 'counterfactual_models' takes names like openai/gpt-4o (lower case), got: " ~ name) }}
    {%- endif %}
    union
    select month, '{{ parts[0] }}' as provider, '{{ parts[1] }}' as model
    from months
    {%- endfor %}

),

candidate_prices as (

    -- the price periods of each month's candidates
    select
        candidates.month,
        candidates.provider,
        candidates.model,
        model_prices.valid_from,
        model_prices.valid_to,
        {%- if has_token_classes %}
        model_prices.service_tier,
        model_prices.above_input_tokens,
        model_prices.threshold_input_tokens,
        model_prices.cache_read_usd_per_1m,
        model_prices.cache_write_usd_per_1m,
        model_prices.cache_write_1h_usd_per_1m,
        model_prices.reasoning_usd_per_1m,
        {%- endif %}
        model_prices.input_usd_per_1m,
        model_prices.output_usd_per_1m
    from candidates
    inner join model_prices
        on candidates.provider = model_prices.provider and candidates.model = model_prices.model

),

price_boundaries as (

    -- the month's first day, and where some candidate's price starts or ends inside the month
    select month, month as boundary from months
    union
    select month, valid_from as boundary from candidate_prices
    where valid_from > month and valid_from < {{ month_start(add_days('month', 31)) }}
    union
    select month, valid_to as boundary from candidate_prices
    where valid_to > month and valid_to < {{ month_start(add_days('month', 31)) }}

),

segments as (

    -- stretches of days over which every candidate's price is constant
    select
        month,
        boundary as segment_start,
        lead(boundary) over (partition by month order by boundary) as segment_end
    from price_boundaries

),

segment_usage as (

    select
        daily_usage.project_id,
        segments.month,
        segments.segment_start,
        {%- if has_token_classes %}
        daily_usage.service_tier,
        daily_usage.prompt_band,
        {%- for column in class_sums %}
        sum(daily_usage.{{ column }}) as {{ column }},
        sum(daily_usage.{{ column }} - daily_usage.cached_{{ column }}) as uncached_{{ column }},
        {%- endfor %}
        {%- endif %}
        sum(daily_usage.total_requests) as total_requests,
        sum(daily_usage.tokens_input) as tokens_input,
        sum(daily_usage.tokens_output) as tokens_output,
        -- unknown (NULL) when a day's cached tokens are: a day aggregated by a release that did not
        -- count them, whose raw rows are gone (docs/production.md, "Upgrading")
        case when count(*) = count(daily_usage.cached_tokens_input)
            then sum(daily_usage.tokens_input - daily_usage.cached_tokens_input) end as uncached_tokens_input,
        case when count(*) = count(daily_usage.cached_tokens_output)
            then sum(daily_usage.tokens_output - daily_usage.cached_tokens_output) end as uncached_tokens_output,
        sum(daily_usage.total_cost_usd) as total_cost_usd
    from daily_usage
    inner join segments
        on
            {{ month_start('daily_usage.date') }} = segments.month
            and daily_usage.date >= segments.segment_start
            and (segments.segment_end is null or daily_usage.date < segments.segment_end)
    group by
        daily_usage.project_id, segments.month, segments.segment_start
        {{- ', daily_usage.service_tier, daily_usage.prompt_band' if has_token_classes }}

),

priced_segments as (

    -- every project's segment next to every candidate of its month, and the candidate's price over
    -- the segment if it has one (one period covers a segment whole; NULL prices when none does)
    select
        segment_usage.project_id,
        segment_usage.month,
        candidates.provider,
        candidates.model,
        segment_usage.total_requests,
        segment_usage.tokens_input,
        segment_usage.tokens_output,
        segment_usage.uncached_tokens_input,
        segment_usage.uncached_tokens_output,
        segment_usage.total_cost_usd,
        {%- for column in class_sums %}
        segment_usage.{{ column }},
        segment_usage.uncached_{{ column }},
        {%- endfor %}
        candidate_prices.valid_from is not null as is_priced,
        {%- if has_token_classes %}
        candidate_prices.cache_read_usd_per_1m,
        candidate_prices.cache_write_usd_per_1m,
        candidate_prices.cache_write_1h_usd_per_1m,
        candidate_prices.reasoning_usd_per_1m,
        {%- endif %}
        candidate_prices.input_usd_per_1m,
        candidate_prices.output_usd_per_1m
    from segment_usage
    inner join candidates on segment_usage.month = candidates.month
    left join candidate_prices
        on
            candidates.month = candidate_prices.month
            and candidates.provider = candidate_prices.provider
            and candidates.model = candidate_prices.model
            and segment_usage.segment_start >= candidate_prices.valid_from
            and (candidate_prices.valid_to is null or segment_usage.segment_start < candidate_prices.valid_to)
            {%- if has_token_classes %}
            -- the candidate's prices of the segment's tier, on the side of its own threshold
            and candidate_prices.service_tier = segment_usage.service_tier
            and candidate_prices.above_input_tokens = case
                when segment_usage.prompt_band >= candidate_prices.threshold_input_tokens
                    then candidate_prices.threshold_input_tokens
                else 0
            end
            {%- endif %}

),

priced_months as (

    -- the money columns cover the priced segments only: NULL when the candidate priced none
    select
        project_id,
        month,
        provider,
        model,
        sum(total_requests) as total_requests,
        sum(case when is_priced then total_requests else 0 end) as priced_requests,
        sum(case when is_priced then tokens_input else 0 end) as tokens_input,
        sum(case when is_priced then tokens_output else 0 end) as tokens_output,
        sum(case when is_priced then total_cost_usd end) as actual_cost_usd,
        case when bool_and(not is_priced or (uncached_tokens_input is not null and uncached_tokens_output is not null)) then sum(
            {{ list_price_of_tokens('uncached_', has_token_classes) | indent(12) }}
        ) end as counterfactual_cost_usd,
        sum(
            {{ list_price_of_tokens('', has_token_classes) | indent(12) }}
        ) as counterfactual_potential_cost_usd
    from priced_segments
    group by project_id, month, provider, model

),

final as (

    select
        project_id,
        month,
        provider,
        model,
        cast(total_requests as bigint) as total_requests,
        cast(priced_requests as bigint) as priced_requests,
        cast(tokens_input as bigint) as tokens_input,
        cast(tokens_output as bigint) as tokens_output,
        actual_cost_usd,
        counterfactual_cost_usd,
        counterfactual_potential_cost_usd,
        counterfactual_cost_usd - actual_cost_usd as difference_usd
    from priced_months

)

select * from final
