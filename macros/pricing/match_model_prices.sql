{#
    The pricing rule in one place: `rows` (a CTE with provider, model and a UTC date column) with
    the per-1M-token prices of every token class that apply, from int_model_prices_resolved: the
    exact provider+model period containing the date, else the one provider pattern that matches
    the model; NULL if none. Without `service_tier` and `prompt_band` (columns of `rows`) a row is
    priced at the standard tier below any threshold; with them, at its tier, above the period's
    threshold when its prompt band reaches it.
#}
{% macro match_model_prices(rows, date_column, prices, service_tier=none, prompt_band=none) -%}

    {%- set classes = ['input_usd_per_1m', 'output_usd_per_1m', 'cache_read_usd_per_1m', 'cache_write_usd_per_1m',
                       'cache_write_1h_usd_per_1m', 'reasoning_usd_per_1m'] %}
    select
        {{ rows }}.*,
        {%- for class in classes %}
        coalesce(exact_price.{{ class }}, pattern_price.{{ class }}) as {{ class }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ rows }}
    {%- for price in ['exact_price', 'pattern_price'] %}
    left join {{ prices }} as {{ price }}
        on
            {%- if price == 'exact_price' %}
            {{ rows }}.provider = exact_price.provider
            and {{ rows }}.model = exact_price.model
            {%- else %}
            exact_price.provider is null
            and pattern_price.model_pattern is not null
            and {{ rows }}.provider = pattern_price.provider
            and {{ regex_matches(rows ~ '.model', 'pattern_price.model_pattern') }}
            {%- endif %}
            and {{ rows }}.{{ date_column }} >= {{ price }}.valid_from
            and ({{ price }}.valid_to is null or {{ rows }}.{{ date_column }} < {{ price }}.valid_to)
            {%- if service_tier %}
            and {{ price }}.service_tier = {{ rows }}.{{ service_tier }}
            and {{ price }}.above_input_tokens = case
                when {{ rows }}.{{ prompt_band }} >= {{ price }}.threshold_input_tokens then {{ price }}.threshold_input_tokens
                else 0
            end
            {%- else %}
            and {{ price }}.service_tier = 'standard'
            and {{ price }}.above_input_tokens = 0
            {%- endif %}
    {%- endfor %}

{%- endmacro %}

{#
    A null-aware sum of two money figures: their sum when both are known, the known one when only
    one is, NULL when neither is (contract: sums cover the known values only).
#}
{% macro add_known(a, b) -%}
    coalesce(({{ a }}) + ({{ b }}), {{ a }}, {{ b }})
{%- endmacro %}
