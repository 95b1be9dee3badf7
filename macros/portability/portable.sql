{#
    Engine differences of general use (time, types, text, regexes, materializations), each behind
    adapter.dispatch, so the models run unchanged on another engine once it has its own
    implementations. Differences that belong to one concern sit with it (the latency sketch in
    macros/aggregation/latency_sketch.sql, say).
#}

{# The UTC hour a timestamptz falls in, independent of the session TimeZone. #}
{% macro utc_hour(ts) -%}{{ return(adapter.dispatch('utc_hour', 'watchllm_analytics')(ts)) }}{%- endmacro %}
{% macro default__utc_hour(ts) -%}
    (date_trunc('hour', ({{ ts }}) at time zone 'UTC') at time zone 'UTC')
{%- endmacro %}
{# date_bin (PostgreSQL 14+) is arithmetic on the instant: no time zone conversion per row. #}
{% macro postgres__utc_hour(ts) -%}
    date_bin(interval '1 hour', {{ ts }}, timestamptz '2000-01-01 00:00:00+00')
{%- endmacro %}
{# Spark: arithmetic on epoch seconds, so neither depends on spark.sql.session.timeZone. #}
{% macro spark__utc_hour(ts) -%}
    timestamp_seconds(cast(floor(unix_seconds({{ ts }}) / 3600) as bigint) * 3600)
{%- endmacro %}

{# The UTC calendar date of a timestamptz. #}
{% macro utc_date(ts) -%}{{ return(adapter.dispatch('utc_date', 'watchllm_analytics')(ts)) }}{%- endmacro %}
{% macro default__utc_date(ts) -%}
    cast(({{ ts }}) at time zone 'UTC' as date)
{%- endmacro %}
{% macro spark__utc_date(ts) -%}
    date_from_unix_date(cast(floor(unix_seconds({{ ts }}) / 86400) as int))
{%- endmacro %}

{# The first day of the month of a date. #}
{% macro month_start(d) -%}{{ return(adapter.dispatch('month_start', 'watchllm_analytics')(d)) }}{%- endmacro %}
{% macro default__month_start(d) -%}
    cast(date_trunc('month', {{ d }}) as date)
{%- endmacro %}

{# Midnight UTC at the start of a date, as a timestamptz. #}
{% macro utc_midnight(d) -%}{{ return(adapter.dispatch('utc_midnight', 'watchllm_analytics')(d)) }}{%- endmacro %}
{% macro default__utc_midnight(d) -%}
    (cast({{ d }} as timestamp) at time zone 'UTC')
{%- endmacro %}
{% macro spark__utc_midnight(d) -%}
    timestamp_seconds(cast(unix_date({{ d }}) as bigint) * 86400)
{%- endmacro %}

{# A validated 'YYYY-MM-DD[ HH[:MM[:SS]]]' string read as a UTC instant. #}
{% macro utc_literal(value) -%}{{ return(adapter.dispatch('utc_literal', 'watchllm_analytics')(value)) }}{%- endmacro %}
{% macro default__utc_literal(value) -%}
    (timestamp '{{ value }}' at time zone 'UTC')
{%- endmacro %}
{% macro spark__utc_literal(value) -%}
    {%- set text = value | string -%}
    {%- if text | length == 10 -%}{%- set text = text ~ ' 00:00:00' -%}
    {%- elif text | length == 13 -%}{%- set text = text ~ ':00:00' -%}
    {%- elif text | length == 16 -%}{%- set text = text ~ ':00' -%}
    {%- endif -%}
    cast('{{ text }}Z' as timestamp)
{%- endmacro %}

{# A span of whole hours or minutes. #}
{% macro hours(n) -%}{{ return(adapter.dispatch('hours', 'watchllm_analytics')(whole_number(n, 'hours'))) }}{%- endmacro %}
{% macro default__hours(n) -%}
    (interval '1 hour' * {{ n | int }})
{%- endmacro %}
{% macro minutes(n) -%}{{ return(adapter.dispatch('minutes', 'watchllm_analytics')(whole_number(n, 'minutes'))) }}{%- endmacro %}

{# A var that must be a whole number (lookback_hours, future_tolerance_minutes): refuse anything else. #}
{% macro whole_number(n, what) -%}
    {%- if not modules.re.match('^\s*\d{1,6}\s*$', n | string) -%}
        {{ exceptions.raise_compiler_error("a number of " ~ what ~ " must be a whole number >= 0, got: " ~ n) }}
    {%- endif -%}
    {{ return(n | int) }}
{%- endmacro %}
{% macro default__minutes(n) -%}
    (interval '1 minute' * {{ n | int }})
{%- endmacro %}

{# Case-insensitive POSIX regular-expression match. #}
{% macro regex_matches(value, pattern) -%}{{ return(adapter.dispatch('regex_matches', 'watchllm_analytics')(value, pattern)) }}{%- endmacro %}
{% macro default__regex_matches(value, pattern) -%}
    ({{ value }} ~* {{ pattern }})
{%- endmacro %}
{% macro spark__regex_matches(value, pattern) -%}
    ({{ value }} rlike concat('(?i)', {{ pattern }}))
{%- endmacro %}

{# Trim surrounding whitespace (spaces, tabs, line breaks). #}
{% macro trim_whitespace(value) -%}{{ return(adapter.dispatch('trim_whitespace', 'watchllm_analytics')(value)) }}{%- endmacro %}
{% macro default__trim_whitespace(value) -%}
    btrim({{ value }}, E' \t\n\r\f\v')
{%- endmacro %}
{% macro spark__trim_whitespace(value) -%}
    regexp_replace({{ value }}, '^[ \\t\\n\\r\\f\\x0B]+|[ \\t\\n\\r\\f\\x0B]+$', '')
{%- endmacro %}

{# Aggregate (key, count) rows into a JSON object {key: count}; '{}' when there are none. #}
{% macro counts_to_map(key, value) -%}{{ return(adapter.dispatch('counts_to_map', 'watchllm_analytics')(key, value)) }}{%- endmacro %}
{% macro default__counts_to_map(key, value) -%}
    coalesce(jsonb_object_agg({{ key }}, {{ value }}), cast('{}' as jsonb))
{%- endmacro %}
{% macro spark__counts_to_map(key, value) -%}
    map_from_entries(collect_list(struct({{ key }}, {{ value }})))
{%- endmacro %}

{# The SQL type of money columns: exact decimal, never float. #}
{% macro money_type() -%}{{ return(adapter.dispatch('money_type', 'watchllm_analytics')()) }}{%- endmacro %}
{% macro default__money_type() -%}numeric{%- endmacro %}
{% macro spark__money_type() -%}decimal(38, 18){%- endmacro %}

{# The type int_usage_hourly_by_model stores token and latency sums in (it always has: numeric). #}
{% macro count_sum_type() -%}{{ return(adapter.dispatch('count_sum_type', 'watchllm_analytics')()) }}{%- endmacro %}
{% macro default__count_sum_type() -%}numeric{%- endmacro %}
{% macro spark__count_sum_type() -%}decimal(38, 0){%- endmacro %}

{# USD for a token count at a per-1M-token price; multiplying by 1e-6 keeps numeric exact (no division). #}
{#
    The product is cast back to the money type: Spark widens a decimal product's scale (here to 24+
    places), and a later sum with a decimal(38,18) would then lose integer digits. Prices have at
    most 12 decimals, so the cast is exact; on Postgres numeric it changes nothing.
#}
{% macro usd_for_tokens(tokens, usd_per_1m) -%}
    cast({{ tokens }} * {{ usd_per_1m }} * 0.000001 as {{ money_type() }})
{%- endmacro %}

{# A percent rounded to 2 places; NULL when the denominator is 0 or NULL. #}
{% macro percent_of(numerator, denominator) -%}{{ return(adapter.dispatch('percent_of', 'watchllm_analytics')(numerator, denominator)) }}{%- endmacro %}
{% macro default__percent_of(numerator, denominator) -%}
    round(100 * cast({{ numerator }} as {{ money_type() }}) / nullif({{ denominator }}, 0), 2)
{%- endmacro %}
{#
    Spark types a decimal quotient by its operands' precision (with allowPrecisionLoss off, a
    decimal(38,18) / decimal(38,18) leaves no integer digits) and turns the overflow into NULL.
    A rounded percentage is not money: it is computed in double precision, then rounded to 2
    places, equal to Postgres's unless the exact value lies within ~1e-12 of a rounding boundary.
#}
{% macro spark__percent_of(numerator, denominator) -%}
    cast(round(100 * cast({{ numerator }} as double) / nullif(cast({{ denominator }} as double), 0), 2) as decimal(38, 2))
{%- endmacro %}

{# An average from an additive sum and count, rounded to 2 places; NULL when the count is 0. #}
{% macro ratio_2dp(total, count) -%}
    round(cast({{ total }} as {{ money_type() }}) / nullif({{ count }}, 0), 2)
{%- endmacro %}

{# The number of rows for which a boolean expression is true (0 when none). #}
{% macro count_if(condition) -%}{{ return(adapter.dispatch('count_if', 'watchllm_analytics')(condition)) }}{%- endmacro %}
{% macro default__count_if(condition) -%}
    sum(case when {{ condition }} then 1 else 0 end)
{%- endmacro %}
{% macro postgres__count_if(condition) -%}
    count(*) filter (where {{ condition }})
{%- endmacro %}

{# The sum of an expression over the rows for which a boolean expression is true (NULL when none). #}
{% macro sum_if(expression, condition) -%}{{ return(adapter.dispatch('sum_if', 'watchllm_analytics')(expression, condition)) }}{%- endmacro %}
{% macro default__sum_if(expression, condition) -%}
    sum(case when {{ condition }} then {{ expression }} end)
{%- endmacro %}
{% macro postgres__sum_if(expression, condition) -%}
    sum({{ expression }}) filter (where {{ condition }})
{%- endmacro %}

{# The date `n` days after the date `d` (n may be negative or an expression). #}
{% macro add_days(d, n) -%}{{ return(adapter.dispatch('add_days', 'watchllm_analytics')(d, n)) }}{%- endmacro %}
{% macro default__add_days(d, n) -%}
    cast(({{ d }}) + ({{ n }}) as date)
{%- endmacro %}
{% macro spark__add_days(d, n) -%}
    date_add({{ d }}, {{ n }})
{%- endmacro %}

{# Whole days from the date `a` to the date `b` (b - a). #}
{% macro days_between(a, b) -%}{{ return(adapter.dispatch('days_between', 'watchllm_analytics')(a, b)) }}{%- endmacro %}
{% macro default__days_between(a, b) -%}
    (({{ b }}) - ({{ a }}))
{%- endmacro %}
{% macro spark__days_between(a, b) -%}
    datediff({{ b }}, {{ a }})
{%- endmacro %}

{# The day of the week of a date, as a number (a grouping key: its numbering differs by engine). #}
{% macro weekday(d) -%}{{ return(adapter.dispatch('weekday', 'watchllm_analytics')(d)) }}{%- endmacro %}
{% macro default__weekday(d) -%}
    cast(extract(isodow from {{ d }}) as integer)
{%- endmacro %}
{% macro spark__weekday(d) -%}
    dayofweek({{ d }})
{%- endmacro %}

{# A date var (YYYY-MM-DD) as a SQL date, validated: anything else fails the compile. #}
{% macro validated_date(value, what) -%}
    {%- set text = value | string | trim -%}
    {%- if not modules.re.match('^\d{4}-\d{2}-\d{2}$', text) -%}
        {{ exceptions.raise_compiler_error("var '" ~ what ~ "' must be a date like 2026-11-01, got: " ~ text) }}
    {%- endif -%}
    cast('{{ text }}' as date)
{%- endmacro %}

{# The engine's double-precision float type (for the sketch's logarithms; never for money). #}
{% macro float_type() -%}{{ return(adapter.dispatch('float_type', 'watchllm_analytics')()) }}{%- endmacro %}
{% macro default__float_type() -%}double precision{%- endmacro %}
{% macro spark__float_type() -%}double{%- endmacro %}

{# `not materialized` for a CTE read several times (PostgreSQL would otherwise write it to disk once and read it back). #}
{% macro not_materialized() -%}{{ return(adapter.dispatch('not_materialized', 'watchllm_analytics')()) }}{%- endmacro %}
{% macro default__not_materialized() -%}{%- endmacro %}
{% macro postgres__not_materialized() -%}not materialized{%- endmacro %}

{#
    How an aggregate model materializes and replaces its buckets. Postgres: incremental with
    bucket_replace (macros/incremental/bucket_replace.sql), per (project, bucket). Spark: incremental
    with dynamic partition overwrite (insert_overwrite): the tables are partitioned by UTC date (the
    hourly ones by a `partition_date` column, the daily ones by `date`, the monthly ones by
    `month`), and a run replaces exactly the partitions its batch has rows for, so a day whose raw
    rows are gone is never overwritten. Other engines: a table rebuilt whole.
#}
{% macro aggregate_materialization() -%}{{ return(adapter.dispatch('aggregate_materialization', 'watchllm_analytics')()) }}{%- endmacro %}
{% macro default__aggregate_materialization() -%}{{ return('table') }}{%- endmacro %}
{% macro postgres__aggregate_materialization() -%}{{ return('incremental') }}{%- endmacro %}
{% macro spark__aggregate_materialization() -%}{{ return('incremental') }}{%- endmacro %}

{% macro aggregate_incremental_strategy() -%}{{ return(adapter.dispatch('aggregate_incremental_strategy', 'watchllm_analytics')()) }}{%- endmacro %}
{% macro default__aggregate_incremental_strategy() -%}{{ return('bucket_replace') }}{%- endmacro %}
{% macro spark__aggregate_incremental_strategy() -%}{{ return('insert_overwrite') }}{%- endmacro %}

{# The partition column of an aggregate table (Spark), or none (Postgres: no partitions). #}
{% macro aggregate_partition_by(column) -%}{{ return(adapter.dispatch('aggregate_partition_by', 'watchllm_analytics')(column)) }}{%- endmacro %}
{% macro default__aggregate_partition_by(column) -%}{{ return(none) }}{%- endmacro %}
{% macro spark__aggregate_partition_by(column) -%}{{ return(column) }}{%- endmacro %}

{#
    The extra select-list entry an hourly table carries on Spark: `partition_date`, the UTC date of
    `time_column`, its partition key (one partition per hour would make thousands of small files).
    Nothing on Postgres.
#}
{% macro partition_date_column(time_column) -%}{{ return(adapter.dispatch('partition_date_column', 'watchllm_analytics')(time_column)) }}{%- endmacro %}
{% macro default__partition_date_column(time_column) -%}{%- endmacro %}
{% macro spark__partition_date_column(time_column) -%}, {{ utc_date(time_column) }} as partition_date{%- endmacro %}

{#
    The smallest unit a run of a model of bucket `grain` can replace: the bucket itself on Postgres;
    on Spark the partition, so hourly models rebuild whole UTC days.
#}
{% macro replace_grain(grain) -%}{{ return(adapter.dispatch('replace_grain', 'watchllm_analytics')(grain)) }}{%- endmacro %}
{% macro default__replace_grain(grain) -%}{{ return(grain) }}{%- endmacro %}
{% macro spark__replace_grain(grain) -%}{{ return('day' if grain == 'hour' else grain) }}{%- endmacro %}

