{#
    A provider or model name as the aggregates key it (docs/contract.md, section 3): trimmed, lower-cased,
    `unknown` when NULL or blank. stg_proxy__usage_logs applies it to every row;
    aggregate_requests_by_hour can apply it to the distinct names of a group instead.
#}
{% macro normalised_label(value) -%}
    coalesce(nullif(lower({{ trim_whitespace(value) }}), ''), 'unknown')
{%- endmacro %}
