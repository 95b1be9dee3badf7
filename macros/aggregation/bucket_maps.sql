{#
    The map {name: summed count} of two lists of one group, collected side by side in the same
    grouping (names[i] goes with counts[i]): a provider's or model's requests in a bucket.
#}
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
{% macro spark__map_from_lists(names, counts) -%}
    map_from_entries(transform(array_distinct({{ names }}), listed_name -> struct(
        listed_name,
        aggregate(
            zip_with({{ names }}, {{ counts }}, (name, requests) -> case when name = listed_name then requests else cast(0 as bigint) end),
            cast(0 as bigint),
            (total, requests) -> total + requests
        )
    )))
{%- endmacro %}

{# Aggregate: the list of the group's values of `expression`, in the order of every other list_of in the same grouping. #}
{% macro list_of(expression) -%}
    {{ return(adapter.dispatch('list_of', 'watchllm_analytics')(expression)) }}
{%- endmacro %}
{% macro default__list_of(expression) -%}
    array_agg({{ expression }})
{%- endmacro %}
{% macro spark__list_of(expression) -%}
    collect_list({{ expression }})
{%- endmacro %}
