{# Fails on price periods of one provider + model (+ pattern) that overlap, share a start, or end before they start. #}
{% test price_periods_do_not_overlap(model) %}

with periods as (

    select
        provider,
        lower(model) as model,
        coalesce(model_pattern, '') as model_pattern,
        valid_from,
        coalesce(valid_to, cast('9999-12-31' as date)) as valid_to
    from {{ model }}

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

)

select * from overlapping
union all
select * from same_start
union all
select * from backwards

{% endtest %}
