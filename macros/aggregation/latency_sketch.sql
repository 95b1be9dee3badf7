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
    CTEs `<prefix>_sketch_entries`, `<prefix>_sketch_ranks` and `<prefix>_sketches`: the sketches of
    `rows` (a CTE with a `latency_sketch` column) merged per `group_columns`, with the merged map
    (NULL with keep_sketch=false) and the nearest-rank p50, p95 and p99 (docs/contract.md,
    section 8). With `sign_column`, each row's counts are multiplied by that column (+1 or -1) and
    keys whose signed count is not positive are dropped: a sketch minus the sketch of a part of its
    requests is the sketch of the rest, exactly. Ends with a comma.
#}
{% macro merge_latency_sketches(rows, group_columns, prefix, keep_sketch=true, sign_column=none) -%}
{%- set groups = group_columns | join(', ') %}
{%- set signed_count = 'sketch_count * ' ~ sign_column if sign_column else 'sketch_count' %}
{{ prefix }}_sketch_entries as (

    select
        {{ groups }},
        sketch_key,
        sum({{ signed_count }}) as sketch_count
    from (
        {{ latency_sketch_entries(rows, group_columns + ([sign_column] if sign_column else [])) | indent(8) }}
    ) as entries
    group by {{ groups }}, sketch_key
    {%- if sign_column %}
    having sum({{ signed_count }}) > 0
    {%- endif %}

),

{{ prefix }}_sketch_ranks as (

    select
        *,
        sum({{ ranked_count('sketch_count') }}) over (
            partition by {{ groups }} order by sketch_key rows between unbounded preceding and current row
        ) as running_count,
        sum({{ ranked_count('sketch_count') }}) over (partition by {{ groups }}) as known_latencies
    from {{ prefix }}_sketch_entries

),

{{ prefix }}_sketches as (

    select
        {{ groups }},
        {{ counts_to_map('sketch_key', 'sketch_count') if keep_sketch else 'null' }} as latency_sketch,
        {%- for p in [50, 95, 99] %}
        {{ sketch_key_value(percentile_key(p)) }}
            as latency_p{{ p }}_ms{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ prefix }}_sketch_ranks
    group by {{ groups }}

),
{%- endmacro %}

{# The (key, count) entries of every sketch in `rows`, with its `group_columns`. #}
{% macro latency_sketch_entries(rows, group_columns) -%}
    {{ return(adapter.dispatch('latency_sketch_entries', 'watchllm_analytics')(rows, group_columns)) }}
{%- endmacro %}
{% macro default__latency_sketch_entries(rows, group_columns) -%}
    select
        {%- for column in group_columns %}
        sketched.{{ column }},
        {%- endfor %}
        cast(entry.key as integer) as sketch_key,
        cast(entry.value as bigint) as sketch_count
    from {{ rows }} as sketched
    cross join lateral jsonb_each_text(sketched.latency_sketch) as entry
{%- endmacro %}
{% macro spark__latency_sketch_entries(rows, group_columns) -%}
    select
        {%- for column in group_columns %}
        sketched.{{ column }},
        {%- endfor %}
        cast(entry_key as integer) as sketch_key,
        cast(entry_count as bigint) as sketch_count
    from {{ rows }} as sketched
    lateral view explode(sketched.latency_sketch) entry as entry_key, entry_count
{%- endmacro %}

{# Aggregate: the sketch of a group from its (key, count) rows; keys must be unique in the group. NULL when no key is known. #}
{% macro sketch_from_counts(key, count) -%}
    {{ return(adapter.dispatch('sketch_from_counts', 'watchllm_analytics')(key, count)) }}
{%- endmacro %}
{% macro default__sketch_from_counts(key, count) -%}
    jsonb_object_agg({{ key }}, {{ count }}) filter (where {{ key }} is not null)
{%- endmacro %}
{% macro spark__sketch_from_counts(key, count) -%}
    case when count({{ key }}) > 0 then map_from_entries(collect_list(
        case when {{ key }} is not null then struct({{ key }}, {{ count }}) end
    )) end
{%- endmacro %}

{#
    Whether the aggregations build in the one grouping that adds up a group's sums, instead of
    grouping a second time and joining back: the pass's sketch from each row's key count
    (sketch_from_row_key_counts, whose map keeps one of equal keys), the roll-ups' sketches from
    lists (sketch_list_column, join_merged_sketches) and their provider and model maps
    (map_from_lists). A second aggregation over almost as many groups as rows, one sort of every
    sketch entry, and joins whose row estimates can mislead the planner into a nested loop over a
    whole merge are what this saves on Postgres: identical figures, the full build 16.8x -> 9.0x
    the contract-grain floor at 10M rows (docs/performance.md). Adapter-dispatched: default__
    (true); spark__ (false: Spark's maps refuse equal keys, so the keyed pass,
    merge_latency_sketches and two groupings for the maps).
#}
{% macro aggregates_from_group_lists() -%}
    {{ return(adapter.dispatch('aggregates_from_group_lists', 'watchllm_analytics')()) }}
{%- endmacro %}
{% macro default__aggregates_from_group_lists() -%}
    {{ return(true) }}
{%- endmacro %}
{% macro spark__aggregates_from_group_lists() -%}
    {{ return(false) }}
{%- endmacro %}

{# Aggregate: the group's non-NULL values of `expression` as a list (NULL when there are none). #}
{% macro non_null_list(expression) -%}
    {{ return(adapter.dispatch('non_null_list', 'watchllm_analytics')(expression)) }}
{%- endmacro %}
{% macro default__non_null_list(expression) -%}
    array_agg({{ expression }}) filter (where {{ expression }} is not null)
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

{# With aggregates_from_group_lists: `, <list of the group's sketches> as latency_sketches` for a grouped select; else nothing. #}
{% macro sketch_list_column() -%}
    {%- if aggregates_from_group_lists() -%}
    ,
        {{ non_null_list('latency_sketch') }} as latency_sketches
    {%- endif -%}
{%- endmacro %}

{#
    The merged sketches as `<prefix>_sketches` (latency_sketch, latency_p50_ms, _p95_ms, _p99_ms)
    beside the rows of `grouped` (the CTE that has the sums): with aggregates_from_group_lists, a
    LATERAL merge of its latency_sketches list (sketch_list_column); else a left join to the
    `<prefix>_sketches` CTE of merge_latency_sketches on `group_columns`. No row of the merge, so
    NULLs, where the group has no known latency.
#}
{% macro join_merged_sketches(prefix, grouped, group_columns, keep_sketch=true) -%}
    {%- if aggregates_from_group_lists() -%}
    {{ adapter.dispatch('merged_sketch_lateral', 'watchllm_analytics')(grouped ~ '.latency_sketches', prefix ~ '_sketches', keep_sketch) }}
    {%- else -%}
    left join {{ prefix }}_sketches
        on
        {%- for column in group_columns %}
            {{ 'and ' if not loop.first }}{{ grouped }}.{{ column }} = {{ prefix }}_sketches.{{ column }}
        {%- endfor %}
    {%- endif -%}
{%- endmacro %}
{% macro default__merged_sketch_lateral(sketch_list, alias, keep_sketch) -%}
    left join lateral (
        select
            {{ counts_to_map('sketch_key', 'sketch_count') if keep_sketch else 'null' }} as latency_sketch,
            {%- for p in [50, 95, 99] %}
            {{ sketch_key_value(percentile_key(p)) }}
                as latency_p{{ p }}_ms{{ ',' if not loop.last }}
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
            ) as group_entries
        ) as ranked
        having count(*) > 0
    ) as {{ alias }} on true
{%- endmacro %}
