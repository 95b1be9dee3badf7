{#
    Which slice of time an incremental run rebuilds.

    Normal runs rebuild everything from `lookback_hours` before the target's own newest bucket,
    so a run after an outage catches up by itself. With `--vars '{start: ..., end: ...}'` a run
    rebuilds exactly that UTC range instead (widened to whole buckets of the model's grain).
#}

{# The validated `start`/`end` var, or none. #}
{% macro rebuild_bound(name) -%}
    {%- set value = var(name, none) -%}
    {%- if value is none or value == '' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set value = value | string | trim -%}
    {%- if not modules.re.match('^\d{4}-\d{2}-\d{2}([ T]\d{2}(:\d{2}(:\d{2})?)?)?(Z|\+00(:?00)?)?$', value) -%}
        {{ exceptions.raise_compiler_error("var '" ~ name ~ "' must be a UTC date or timestamp like 2026-11-01 or 2026-11-01T13:00, got: " ~ value) }}
    {%- endif -%}
    {{ return(modules.re.sub('(Z|\+00(:?00)?)$', '', value) | replace('T', ' ')) }}
{%- endmacro %}

{# True when this run rebuilds an explicit range. #}
{% macro is_range_rebuild() -%}
    {%- set start, end = rebuild_bound('start'), rebuild_bound('end') -%}
    {%- if (start is none) != (end is none) -%}
        {{ exceptions.raise_compiler_error("set both vars 'start' and 'end' (UTC, end exclusive) to rebuild a range, or neither") }}
    {%- endif -%}
    {{ return(start is not none) }}
{%- endmacro %}

{#
    SQL predicate selecting the rows of `relation_time_column` (a timestamptz) that this run
    rebuilds, for a model whose own buckets are `grain` ('hour', 'day' or 'month') in column
    `own_column`. The window is widened to whole units of replace_grain(grain): the bucket on
    Postgres, the UTC-date partition on Spark. With `from_pending=true` a scheduled run on Postgres
    rebuilds from what its producer marked as replaced (macros/incremental/pending_rebuilds.sql),
    falling back to the lookback window when that is unknown. A model that is not incremental on
    this engine (a table rebuilt whole) reads everything.
    With `retained` (the table retention trims that the model reads: 'usage_logs', or an aggregate
    table's name), the window never starts before that table's retention watermark, rounded up to
    a whole bucket (macros/incremental/table_bounds.sql).
    With `on_date=true`, `relation_time_column` is a UTC date column instead (of a daily table;
    grain 'day' or 'month', whose window bounds are midnights): it is compared with the bounds'
    UTC dates, so that an index on it serves the range (`midnight(date) >= bound` serves none, and
    a scheduled run would read the whole daily table).
#}
{% macro incremental_time_filter(relation_time_column, own_column, grain, from_pending=false, on_date=false, retained=none) -%}
    {%- set unit = replace_grain(grain) -%}
    {%- if on_date and unit == 'hour' -%}
        {{ exceptions.raise_compiler_error("incremental_time_filter: on_date=true needs a window of whole days, not grain " ~ grain) }}
    {%- endif -%}
    {%- set lower, upper = none, none -%}
    {%- if config.get('materialized') != 'incremental' -%}
        {#- a table rebuilt whole: a range would leave only the range in it -#}
    {%- elif is_range_rebuild() -%}
        {%- set lower = bucket_floor(utc_literal(rebuild_bound('start')), unit) -%}
        {%- set upper = bucket_ceil(utc_literal(rebuild_bound('end')), unit) -%}
    {%- elif is_incremental() and from_pending and uses_pending_rebuilds() -%}
        {%- set lower = 'coalesce(' ~ pending_window_start(unit) ~ ', ' ~ window_start(own_column, grain, unit) ~ ')' -%}
    {%- elif is_incremental() -%}
        {%- set lower = window_start(own_column, grain, unit) -%}
    {%- endif -%}
    {%- if lower is not none and retained is not none -%}
        {#- never a bucket that starts before the watermark of what the model reads: retention touched it -#}
        {%- set lower = 'greatest(' ~ lower ~ ', ' ~ bucket_ceil(retained_from(retained), unit) ~ ')' -%}
    {%- endif -%}
    {%- if lower is none -%}
        true
    {%- else -%}
        {{ relation_time_column }} >= {{ utc_date(lower) if on_date else lower }}
        {%- if upper is not none %}
        and {{ relation_time_column }} < {{ utc_date(upper) if on_date else upper }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#
    The first instant the current incremental run rebuilds: the newest own bucket (of `grain`)
    minus the lookback, rounded down to a whole `unit`. On Spark the instant is read before the
    batch and written into it as a literal: the batch must not read the table it overwrites.
#}
{% macro window_start(own_column, grain, unit=none) -%}
    {{ return(adapter.dispatch('window_start', 'watchllm_analytics')(own_column, grain, unit or grain)) }}
{%- endmacro %}

{% macro default__window_start(own_column, grain, unit) -%}
    {%- set newest -%}
        {%- if grain == 'hour' -%}max({{ own_column }}){%- else -%}{{ utc_midnight('max(' ~ own_column ~ ')') }}{%- endif -%}
    {%- endset -%}
    (
        select coalesce(
            {{ bucket_floor(newest ~ ' - ' ~ hours(var('lookback_hours')), unit) }},
            {{ utc_literal('1900-01-01') }}
        )
        from {{ this }}
    )
{%- endmacro %}

{% macro spark__window_start(own_column, grain, unit) -%}
    {%- if not execute -%}
        {{ return(utc_literal('1900-01-01')) }}
    {%- endif -%}
    {%- set window_query -%}
        select unix_seconds({{ default__window_start(own_column, grain, unit) }})
    {%- endset -%}
    timestamp_seconds({{ run_query(window_query).columns[0].values()[0] | int }})
{%- endmacro %}

{# Round a timestamptz down / up to a whole UTC hour, day or month. #}
{% macro bucket_floor(ts, grain) -%}
    {%- if grain == 'hour' -%}
        {{ utc_hour(ts) }}
    {%- elif grain == 'day' -%}
        {{ utc_midnight(utc_date(ts)) }}
    {%- elif grain == 'month' -%}
        {{ utc_midnight(month_start(utc_date(ts))) }}
    {%- else -%}
        {{ exceptions.raise_compiler_error("unknown grain " ~ grain) }}
    {%- endif -%}
{%- endmacro %}

{% macro bucket_ceil(ts, grain) -%}
    {%- set step = {'hour': hours(1), 'day': "interval '1 day'", 'month': "interval '1 month'"}[grain] -%}
    {{ bucket_floor('(' ~ ts ~ ') + ' ~ step ~ " - interval '1 microsecond'", grain) }}
{%- endmacro %}

{#
    Serialise writers of one aggregate table: a transaction-level advisory lock keyed by the table,
    released at commit. Two builds at once take turns per table; within one build, models that
    write different tables still run side by side. A build that waits longer than var
    lock_wait_timeout (default 30min) for another one fails with "canceling statement due to lock
    timeout" and changes nothing.
#}
{% macro lock_aggregates() -%}{{ return(adapter.dispatch('lock_aggregates', 'watchllm_analytics')()) }}{%- endmacro %}
{% macro default__lock_aggregates() -%}select 1{%- endmacro %}
{% macro postgres__lock_aggregates() -%}
    {%- set wait = var('lock_wait_timeout', '30min') | string | trim -%}
    {%- if not modules.re.match('^[0-9]{1,6}(ms|s|min|h)$', wait) -%}
        {{ exceptions.raise_compiler_error("var 'lock_wait_timeout' must be a duration like 90s or 30min, got: " ~ wait) }}
    {%- endif -%}
    {%- if var('use_advisory_lock', true) -%}
        set local lock_timeout = '{{ wait }}';
        select pg_advisory_xact_lock(hashtext('watchllm_analytics.{{ this.schema }}.{{ this.identifier }}'));
        set local lock_timeout = 0
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#
    Memory for the sorts and hash tables of one aggregate build (var build_work_mem), set for
    the model's own transaction only: the one pass over raw rows keeps millions of groups.
#}
{% macro set_build_work_mem() -%}{{ return(adapter.dispatch('set_build_work_mem', 'watchllm_analytics')()) }}{%- endmacro %}
{% macro default__set_build_work_mem() -%}select 1{%- endmacro %}
{% macro postgres__set_build_work_mem() -%}
    {%- set amount = var('build_work_mem', '512MB') | string | trim -%}
    {%- if not modules.re.match('^[0-9]{1,7}(kB|MB|GB)$', amount) -%}
        {{ exceptions.raise_compiler_error("var 'build_work_mem' must be a size like 256MB or 1GB, got: " ~ amount) }}
    {%- endif -%}
    set local work_mem = '{{ amount }}'
{%- endmacro %}

{#
    on-run-start: a range rebuild that reaches back before the oldest raw row says so. Buckets
    without raw rows are skipped (bucket_replace only replaces buckets the new batch mentions),
    so their aggregates stay as they are.
#}
{% macro report_rebuild_coverage() -%}
    {%- if execute and is_range_rebuild() -%}
        {%- set coverage_query -%}
            select
                cast(min(created_at) as {{ dbt.type_string() }}) as oldest,
                coalesce(min(created_at) > {{ utc_literal(rebuild_bound('start')) }}, true) as starts_before_raw
            from {{ source('proxy', 'usage_logs') }}
        {%- endset -%}
        {%- set row = run_query(coverage_query).rows[0] -%}
        {%- if row['starts_before_raw'] -%}
            {{ log("range rebuild from " ~ rebuild_bound('start') ~ " UTC: usage_logs has no rows before "
                ~ (row['oldest'] or 'now (it is empty)') ~ " (retention?): buckets before that are skipped"
                ~ " and keep their aggregates", info=True) }}
        {%- endif -%}
    {%- endif -%}
    select 1
{%- endmacro %}
