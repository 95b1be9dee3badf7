{#
    A provider or model name as the aggregates key it (docs/contract.md, section 3): trimmed, lower-cased,
    `unknown` when NULL or blank. stg_proxy__usage_logs applies it to every row;
    int_usage_local_days applies it to the distinct names of a group instead.
#}
{% macro normalised_label(value) -%}
    coalesce(nullif(lower({{ trim_whitespace(value) }}), ''), 'unknown')
{%- endmacro %}

{#
    The longest label (characters, as logged) the aggregates keep (docs/contract.md, section 16):
    a longer one is quarantined with its own reason. Labels become keys of unique indexes, and a
    btree entry holds at most 2,704 bytes; 256 characters of 4-byte UTF-8 each fit twice over.
#}
{% macro max_label_length() -%}256{%- endmacro %}
