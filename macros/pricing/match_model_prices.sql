{#
    The pricing rule in one place: `rows` (a CTE with provider, model and a UTC date column) with
    the per-1M-token input and output price that applies, from the exact provider+model period
    of `prices` (stg_pricing__model_prices or a CTE over it) containing the date, else from the one
    provider pattern that matches the model; NULL if none.
#}
{% macro match_model_prices(rows, date_column, prices) -%}

    select
        {{ rows }}.*,
        coalesce(exact_price.input_usd_per_1m, pattern_price.input_usd_per_1m) as input_usd_per_1m,
        coalesce(exact_price.output_usd_per_1m, pattern_price.output_usd_per_1m) as output_usd_per_1m
    from {{ rows }}
    left join {{ prices }} as exact_price
        on
            {{ rows }}.provider = exact_price.provider
            and {{ rows }}.model = exact_price.model
            and {{ rows }}.{{ date_column }} >= exact_price.valid_from
            and (exact_price.valid_to is null or {{ rows }}.{{ date_column }} < exact_price.valid_to)
    left join {{ prices }} as pattern_price
        on
            exact_price.provider is null
            and pattern_price.model_pattern is not null
            and {{ rows }}.provider = pattern_price.provider
            and {{ regex_matches(rows ~ '.model', 'pattern_price.model_pattern') }}
            and {{ rows }}.{{ date_column }} >= pattern_price.valid_from
            and (pattern_price.valid_to is null or {{ rows }}.{{ date_column }} < pattern_price.valid_to)

{%- endmacro %}

{#
    A null-aware sum of two money figures: their sum when both are known, the known one when only
    one is, NULL when neither is (contract: sums cover the known values only).
#}
{% macro add_known(a, b) -%}
    coalesce(({{ a }}) + ({{ b }}), {{ a }}, {{ b }})
{%- endmacro %}
