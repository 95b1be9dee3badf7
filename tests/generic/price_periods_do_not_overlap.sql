{#
    Fails on price periods of one provider + model (+ pattern) that overlap, share a start, or end
    before they start; a period's rows for other tiers and the side above its threshold must start
    and end with it.
#}
{% test price_periods_do_not_overlap(model) %}

with periods as (

    select
        provider,
        lower(model) as model,
        coalesce(model_pattern, '') as model_pattern,
        valid_from,
        coalesce(valid_to, cast('9999-12-31' as date)) as valid_to
    from {{ model }}
    where coalesce(nullif(lower(service_tier), ''), 'standard') = 'standard' and coalesce(above_input_tokens, 0) = 0

),

overlapping as (

    select earlier.provider, earlier.model, 'overlaps the next period' as problem
    from periods as earlier
    inner join periods as later
        on
            earlier.provider = later.provider
            and earlier.model = later.model
            and earlier.model_pattern = later.model_pattern
            and earlier.valid_from < later.valid_from
            and later.valid_from < earlier.valid_to

),

same_start as (

    select provider, model, 'two periods start the same day' as problem
    from periods
    group by provider, model, model_pattern, valid_from
    having count(*) > 1

),

backwards as (

    select provider, model, 'valid_to is not after valid_from' as problem
    from periods
    where valid_to <= valid_from

),

price_rows as (

    select
        provider,
        lower(model) as model,
        coalesce(model_pattern, '') as model_pattern,
        valid_from,
        coalesce(valid_to, cast('9999-12-31' as date)) as valid_to,
        coalesce(nullif(lower(service_tier), ''), 'standard') as service_tier,
        coalesce(above_input_tokens, 0) as above_input_tokens
    from {{ model }}

),

orphaned as (

    -- a tier or above-threshold row whose period (same start) ends elsewhere or does not exist
    select price_rows.provider, price_rows.model, 'a tier or threshold row without its period' as problem
    from price_rows
    left join periods
        on
            price_rows.provider = periods.provider
            and price_rows.model = periods.model
            and price_rows.model_pattern = periods.model_pattern
            and price_rows.valid_from = periods.valid_from
            and price_rows.valid_to = periods.valid_to
    where periods.provider is null

),

repeated_rows as (

    select provider, model, 'a period prices one tier and side twice' as problem
    from price_rows
    group by provider, model, model_pattern, valid_from, service_tier, above_input_tokens
    having count(*) > 1

),

two_thresholds as (

    select provider, model, 'a period has more than one threshold' as problem
    from price_rows
    where above_input_tokens > 0
    group by provider, model, model_pattern, valid_from
    having count(distinct above_input_tokens) > 1

)

select * from overlapping
union all
select * from orphaned
union all
select * from repeated_rows
union all
select * from two_thresholds
union all
select * from same_start
union all
select * from backwards

{% endtest %}
