{#
    The latency sketch (docs/contract.md, section 8): a sparse map {key: requests}. A latency of at
    most 100 ms is its own key (exact); above that, key 100 + j stands for the log bucket
    (100 ms * g^(j-1), 100 ms * g^j] with g = 1.009 / 0.991, reported as 100 ms * 2 g^j / (1 + g),
    at most 0.9% from any value in the bucket. Sketches merge by adding counts per key, so a day's
    or a dashboard's percentiles are exact merges of the hours', never averages of percentiles:
    the reported nearest-rank percentile is within max(1 ms, 1%) of percentile_disc over the raw
    latencies.
#}

{% macro sketch_exact_below_ms() -%}100{%- endmacro %}
{% macro sketch_log_gamma() -%}0.018000486023620893{%- endmacro %}
{% macro sketch_gamma() -%}1.0181634712411705{%- endmacro %}

{# The sketch key of one latency in ms (NULL stays NULL). #}
{% macro latency_sketch_key(latency_ms) -%}
    case
        when {{ latency_ms }} is null then null
        when {{ latency_ms }} <= {{ sketch_exact_below_ms() }} then {{ latency_ms }}
        else {{ sketch_exact_below_ms() }} + cast(ceil(
            ln(cast({{ latency_ms }} as {{ float_type() }}) / {{ sketch_exact_below_ms() }}) / {{ sketch_log_gamma() }}
        ) as integer)
    end
{%- endmacro %}

{# The latency (ms, numeric, 2 decimals) a sketch key stands for. #}
{% macro sketch_key_value(key) -%}
    case
        when {{ key }} is null then null
        when {{ key }} <= {{ sketch_exact_below_ms() }} then cast({{ key }} as {{ money_type() }})
        else cast(round(cast(
            {{ sketch_exact_below_ms() }} * 2 * power({{ sketch_gamma() }}, {{ key }} - {{ sketch_exact_below_ms() }})
            / (1 + {{ sketch_gamma() }})
        as {{ money_type() }}), 2) as {{ money_type() }})
    end
{%- endmacro %}

{#
    Aggregate over ranked entries (running_count, known_latencies, sketch_key): the key of the
    nearest-rank p-th percentile, the first key whose running count reaches ceil(p% of the known
    latencies). For whole p and integer counts that is running_count * 100 >= p * known_latencies,
    which stays in integer arithmetic (ceil of a product with 0.95 is numeric on Postgres).
#}
{% macro percentile_key(p) -%}
    min(case when running_count * 100 >= {{ p }} * known_latencies then sketch_key end)
{%- endmacro %}

{#
    A merged entry's count as the running sums take it. Postgres: an integer, so that the window
    sums are bigint (a sum of bigint is numeric there, and numeric window sums cost a tenth of a
    roll-up's time); a key with more than 2,147,483,647 requests in one merged bucket fails the
    build with "integer out of range" rather than round. Spark: the count itself (its sum of
    bigint is bigint).
#}
{% macro ranked_count(count) -%}
    {{ return(adapter.dispatch('ranked_count', 'watchllm_analytics')(count)) }}
{%- endmacro %}
{% macro default__ranked_count(count) -%}
    cast({{ count }} as integer)
{%- endmacro %}
{% macro spark__ranked_count(count) -%}
    {{ count }}
{%- endmacro %}

{#
    Aggregate: the sketch {key: requests} of a group from one row per request with its sketch key
    and that key's count in the group (a window count): equal keys come with equal counts, and the
    map keeps one of them. NULL when no key is known.
#}
{% macro sketch_from_row_key_counts(key, count) -%}
    {{ return(adapter.dispatch('sketch_from_row_key_counts', 'watchllm_analytics')(key, count)) }}
{%- endmacro %}
{% macro default__sketch_from_row_key_counts(key, count) -%}
    jsonb_object_agg({{ key }}, {{ count }}) filter (where {{ key }} is not null)
{%- endmacro %}
{# Spark: its maps keep the last of equal keys under spark.sql.mapKeyDedupPolicy LAST_WIN (profiles.yml). #}
{% macro spark__sketch_from_row_key_counts(key, count) -%}
    case when count({{ key }}) > 0 then map_from_entries(collect_list(
        case when {{ key }} is not null then struct({{ key }}, {{ count }}) end
    )) end
{%- endmacro %}

{# The SQL type a latency sketch is stored as. #}
{% macro sketch_type() -%}{{ return(adapter.dispatch('sketch_type', 'watchllm_analytics')()) }}{%- endmacro %}
{% macro default__sketch_type() -%}jsonb{%- endmacro %}
{% macro spark__sketch_type() -%}map<int, bigint>{%- endmacro %}

{#
    Aggregate: the group's latency sketches as a list, NULLs left out (an empty or NULL list when
    none is known). merged_sketch_join merges the list in the group's own row.
#}
{% macro sketch_list(sketch) -%}
    {{ return(adapter.dispatch('sketch_list', 'watchllm_analytics')(sketch)) }}
{%- endmacro %}
{% macro default__sketch_list(sketch) -%}
    array_agg({{ sketch }}) filter (where {{ sketch }} is not null)
{%- endmacro %}
{% macro spark__sketch_list(sketch) -%}
    collect_list({{ sketch }})
{%- endmacro %}

{#
    A FROM-clause join that gives each row of a grouped select, from its list of sketches
    (sketch_list), the columns <alias>.latency_sketch (the sketches merged: counts added per key),
    <alias>.latency_p50_ms, _p95_ms and _p99_ms (nearest rank over the merged counts,
    docs/contract.md, section 8). NULLs where the list has no sketch. Merging in the group's own row
    saves a second aggregation over every sketch entry and a join back.
#}
{% macro merged_sketch_join(sketch_list, alias) -%}
    {{ return(adapter.dispatch('merged_sketch_join', 'watchllm_analytics')(sketch_list, alias)) }}
{%- endmacro %}

{# Postgres: a lateral subquery adds up the list's entries per key and ranks them with window sums. #}
{% macro default__merged_sketch_join(sketch_list, alias) -%}
    left join lateral (
        select
            {{ counts_to_map('sketch_key', 'sketch_count') }} as latency_sketch,
            {%- for p in [50, 95, 99] %}
            {{ sketch_key_value(percentile_key(p)) }} as latency_p{{ p }}_ms{{ ',' if not loop.last }}
            {%- endfor %}
        from (
            select
                sketch_key,
                sketch_count,
                sum({{ ranked_count('sketch_count') }}) over (order by sketch_key rows between unbounded preceding and current row)
                    as running_count,
                sum({{ ranked_count('sketch_count') }}) over () as known_latencies
            from (
                select
                    cast(entry.key as integer) as sketch_key,
                    sum(cast(entry.value as integer)) as sketch_count
                from unnest({{ sketch_list }}) as listed (sketch)
                cross join lateral jsonb_each_text(listed.sketch) as entry
                group by cast(entry.key as integer)
            ) as merged_entries
        ) as ranked_entries
        having count(*) > 0
    ) as {{ alias }} on true
{%- endmacro %}

{#
    Spark: higher-order functions over the list. The maps are added key by key (map_zip_with), then
    one pass over the merged entries in key order keeps the running count and the first key that
    reaches each rank. Lateral views compute the merged map and its total once per row.
#}
{% macro spark__merged_sketch_join(sketch_list, alias) -%}
    {%- set merged = alias ~ '_merged.merged_sketch' %}
    {%- set empty_sketch = 'map_from_arrays(cast(array() as array<int>), cast(array() as array<bigint>))' %}
    lateral view outer explode(array(
        case when size({{ sketch_list }}) > 0 then aggregate(
            {{ sketch_list }},
            {{ empty_sketch }},
            (merged, sketch) -> map_zip_with(merged, sketch, (sketch_key, left_count, right_count) ->
                coalesce(left_count, cast(0 as bigint)) + coalesce(right_count, cast(0 as bigint)))
        ) end
    )) {{ alias }}_merged as merged_sketch
    lateral view outer explode(array(
        aggregate(map_values(coalesce({{ merged }}, {{ empty_sketch }})), cast(0 as bigint), (total, requests) -> total + requests)
    )) {{ alias }}_known as known_latencies
    lateral view outer inline(array(aggregate(
        array_sort(map_entries(coalesce({{ merged }}, {{ empty_sketch }}))),
        named_struct(
            'running_count', cast(0 as bigint),
            {%- for p in [50, 95, 99] %}
            'p{{ p }}', cast(null as int){{ ',' if not loop.last }}
            {%- endfor %}
        ),
        (ranked, entry) -> named_struct(
            'running_count', ranked.running_count + entry.value,
            {%- for p in [50, 95, 99] %}
            'p{{ p }}', coalesce(ranked.p{{ p }}, case
                when (ranked.running_count + entry.value) * 100 >= {{ p }} * {{ alias }}_known.known_latencies then entry.key
            end){{ ',' if not loop.last }}
            {%- endfor %}
        ),
        ranked -> named_struct(
            'latency_sketch', {{ merged }},
            {%- for p in [50, 95, 99] %}
            'latency_p{{ p }}_ms', {{ sketch_key_value('ranked.p' ~ p) }}{{ ',' if not loop.last }}
            {%- endfor %}
        )
    ))) {{ alias }} as latency_sketch, latency_p50_ms, latency_p95_ms, latency_p99_ms
{%- endmacro %}
