{#
    The nearest-rank p50, p95 and p99 of a list of latency sketches merged (docs/contract.md, section 8):
    their counts added up per key, then ranked, as every roll-up merges them. NULLs when no latency
    is known. The alert rules judge a day against the merge of the 7 days before it with it
    (orchestration/core/alerts/rules.py), so the alerts compute no percentile of their own.
#}

{{
    config(
        materialized='sql_function',
        language='sql',
        volatility='immutable',
        arguments='p_sketches jsonb[]',
        argument_types='jsonb[]',
        returns="""table (
            latency_p50_ms numeric,
            latency_p95_ms numeric,
            latency_p99_ms numeric
        )""",
    )
}}

select
    {%- for p in [50, 95, 99] %}
    {{ sketch_key_value(percentile_key(p)) }} as latency_p{{ p }}_ms{{ ',' if not loop.last }}
    {%- endfor %}
from (
    select
        sketch_key,
        sum({{ ranked_count('sketch_count') }}) over (order by sketch_key rows between unbounded preceding and current row)
            as running_count,
        sum({{ ranked_count('sketch_count') }}) over () as known_latencies
    from (
        select
            cast(entry.key as integer) as sketch_key,
            sum(cast(entry.value as bigint)) as sketch_count
        from unnest(p_sketches) as listed (sketch)
        cross join lateral jsonb_each_text(listed.sketch) as entry
        group by cast(entry.key as integer)
    ) as merged_keys
) as ranked_keys
