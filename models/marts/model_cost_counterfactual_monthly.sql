{#
    What each project's traffic of a UTC month would have cost at another model's list prices
    (docs/contract.md, section 10), for every candidate model. Computed from additive daily sums:
    a candidate's price is constant over a UTC day (price periods are whole days), so per project
    and day price x token sums = the sum of price x tokens per request, exactly. A day the
    candidate has no price for is left out of every money column and of priced_requests.
    Incremental like project_savings_monthly: the months whose days usage_aggregations_daily
    replaced are rebuilt whole.
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
            "{{ lock_pending_rebuild('usage_aggregations_daily') }}",
        ],
        post_hook=["{{ clear_pending_rebuild(ref('usage_aggregations_daily'), 'date', 'day') }}"],
    )
}}

with daily_usage as (

    select * from {{ ref('usage_aggregations_daily') }}
    where {{ incremental_time_filter(utc_midnight('date'), 'month', 'month', from_pending=true) }}

),

models_used as (

    select * from {{ ref('usage_by_model_daily') }}
    where {{ incremental_time_filter(utc_midnight('date'), 'month', 'month', from_pending=true) }}

),

model_prices as (

    select * from {{ ref('stg_pricing__model_prices') }}
    where model_pattern is null

),

months as (

    select distinct {{ month_start('date') }} as month
    from daily_usage

),

candidates as (

    -- every exact-name priced model that some project used in the month, plus var counterfactual_models
    select distinct
        {{ month_start('models_used.date') }} as month,
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

project_months as (

    select
        project_id,
        {{ month_start('date') }} as month,
        sum(total_requests) as total_requests
    from daily_usage
    group by project_id, {{ month_start('date') }}

),

priced_days as (

    -- each project day next to each candidate's price on that day
    select
        daily_usage.project_id,
        candidates.month,
        candidates.provider,
        candidates.model,
        daily_usage.total_requests,
        daily_usage.tokens_input,
        daily_usage.tokens_output,
        daily_usage.tokens_input - daily_usage.cached_tokens_input as uncached_tokens_input,
        daily_usage.tokens_output - daily_usage.cached_tokens_output as uncached_tokens_output,
        daily_usage.total_cost_usd,
        model_prices.input_usd_per_1m,
        model_prices.output_usd_per_1m
    from daily_usage
    inner join candidates on {{ month_start('daily_usage.date') }} = candidates.month
    inner join model_prices
        on
            candidates.provider = model_prices.provider
            and candidates.model = model_prices.model
            and daily_usage.date >= model_prices.valid_from
            and (model_prices.valid_to is null or daily_usage.date < model_prices.valid_to)

),

priced_months as (

    select
        project_id,
        month,
        provider,
        model,
        sum(total_requests) as priced_requests,
        sum(tokens_input) as tokens_input,
        sum(tokens_output) as tokens_output,
        sum(total_cost_usd) as actual_cost_usd,
        sum(
            {{ usd_for_tokens('uncached_tokens_input', 'input_usd_per_1m') }}
            + {{ usd_for_tokens('uncached_tokens_output', 'output_usd_per_1m') }}
        ) as counterfactual_cost_usd,
        sum(
            {{ usd_for_tokens('tokens_input', 'input_usd_per_1m') }}
            + {{ usd_for_tokens('tokens_output', 'output_usd_per_1m') }}
        ) as counterfactual_potential_cost_usd
    from priced_days
    group by project_id, month, provider, model

),

final as (

    -- every project of the month against every candidate of the month, priced or not
    select
        project_months.project_id,
        project_months.month,
        candidates.provider,
        candidates.model,
        cast(project_months.total_requests as bigint) as total_requests,
        cast(coalesce(priced_months.priced_requests, 0) as bigint) as priced_requests,
        cast(coalesce(priced_months.tokens_input, 0) as bigint) as tokens_input,
        cast(coalesce(priced_months.tokens_output, 0) as bigint) as tokens_output,
        priced_months.actual_cost_usd,
        priced_months.counterfactual_cost_usd,
        priced_months.counterfactual_potential_cost_usd,
        priced_months.counterfactual_cost_usd - priced_months.actual_cost_usd as difference_usd
    from project_months
    inner join candidates on project_months.month = candidates.month
    left join priced_months
        on
            project_months.project_id = priced_months.project_id
            and project_months.month = priced_months.month
            and candidates.provider = priced_months.provider
            and candidates.model = priced_months.model

)

select * from final
