{#
    Reconciliation helpers for the singular tests. Every aggregate is checked against
    int_usage_hourly_by_model, and that against the kept raw rows, so together they prove
    daily = hourly = raw. Each test involves only two neighbouring layers, so a run that rebuilds
    one layer (a Dagster partition) is never judged against a layer it did not touch. They read
    only the run's test window (macros/quality/test_window.sql); the deep check reads all of it.
#}

{#
    The hours to reconcile: from the test window's start up to the newest hour of `hourly_by_model`
    (int_usage_hourly_by_model), which may still be receiving rows. Never before the first whole
    day that int_usage_hourly_by_model, and with `raw_rows_too` the raw log (`logged`, the
    usage_logs source), still hold: retention may have cut the day before (the deep check reads
    from there).
#}
{% macro reconciliation_hours(hourly_by_model, logged, raw_rows_too=true) %}

    select
        greatest(
            {{ test_window_start(logged) if not tests_read_all_history() else utc_literal('1900-01-01') }},
            {%- if raw_rows_too %}
            {{ utc_midnight(first_logged_day(logged) ~ ' + 1') }},
            {{ retained_from('usage_logs') }},
            {%- endif %}
            {{ utc_midnight(utc_date('min(hourly.hour_start)') ~ ' + 1') }}
        ) as first_hour,
        {%- if is_range_rebuild() %}
        least(
            max(hourly.hour_start),
            {{ bucket_ceil(utc_literal(rebuild_bound('end')), 'hour') }}
        ) as open_hour
        {%- else %}
        max(hourly.hour_start) as open_hour
        {%- endif %}
    from {{ hourly_by_model }} as hourly

{% endmacro %}

{#
    The first UTC day the raw log still holds (a date; NULL when it is empty). Spark: from the
    partition list of usage_logs (metastore only) instead of a scan of every created_at.
#}
{% macro first_logged_day(logged) -%}{{ return(adapter.dispatch('first_logged_day', 'watchllm_analytics')(logged)) }}{%- endmacro %}
{% macro default__first_logged_day(logged) -%}
    (select {{ utc_date('min(created_at)') }} from {{ logged }})
{%- endmacro %}
{% macro spark__first_logged_day(logged) -%}
    {%- set days = [] -%}
    {%- if execute -%}
        {%- for row in run_query('show partitions ' ~ logged) -%}
            {%- set value = row[0].split('=', 1)[1] -%}
            {%- if modules.re.match('^\d{4}-\d{2}-\d{2}$', value) -%}{%- do days.append(value) -%}{%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if days -%}cast('{{ days | min }}' as date){%- else -%}cast(null as date){%- endif -%}
{%- endmacro %}

{#
    Per project and bucket, `relation`'s totals next to `hourly_by_model`'s over the hours of
    `hours` (a CTE with first_hour, open_hour): `bucket_expression` is the relation's bucket
    (hour_start, or date for a daily table) and `hourly_bucket` the same bucket computed from
    int_usage_hourly_by_model's hour_start. A daily table is compared over whole days.
#}
{% macro compare_with_hourly_by_model(relation, bucket_expression, hourly_bucket, grain, hours, hourly_by_model) %}

    {%- set first = '(select first_hour from ' ~ hours ~ ')' -%}
    {%- set last = '(select open_hour from ' ~ hours ~ ')' -%}
    {%- if grain == 'day' -%}
        {%- set first = utc_midnight(utc_date(first)) -%}
        {%- set last = utc_midnight(utc_date(last) ~ ' + 1') -%}
    {%- endif %}

    aggregate_totals as (
        select project_id, {{ bucket_expression }} as bucket, sum(total_requests) as requests,
            sum(tokens_input) as tokens_input, sum(cached_requests) as cached_requests
        from {{ relation }}
        where
            {% if grain == 'day' -%}
            {{ bucket_expression }} >= {{ utc_date(first) }} and {{ bucket_expression }} < {{ utc_date(last) }}
            {%- else -%}
            {{ bucket_expression }} >= {{ first }} and {{ bucket_expression }} <= {{ last }}
            {%- endif %}
        group by project_id, {{ bucket_expression }}
    ),

    hourly_by_model_totals as (
        select project_id, {{ hourly_bucket }} as bucket, sum(total_requests) as requests,
            sum(tokens_input) as tokens_input, sum(cached_requests) as cached_requests
        from {{ hourly_by_model }}
        where
            hour_start >= {{ first }}
            and hour_start {{ '<' if grain == 'day' else '<=' }} {{ last }}
        group by project_id, {{ hourly_bucket }}
    ),

    compared as (
        select
            coalesce(a.project_id, h.project_id) as project_id,
            coalesce(a.bucket, h.bucket) as bucket,
            coalesce(a.requests, 0) as aggregate_requests,
            coalesce(h.requests, 0) as hourly_by_model_requests
        from aggregate_totals as a
        full outer join hourly_by_model_totals as h on a.project_id = h.project_id and a.bucket = h.bucket
        where
            coalesce(a.requests, 0) != coalesce(h.requests, 0)
            or coalesce(a.tokens_input, 0) != coalesce(h.tokens_input, 0)
            or coalesce(a.cached_requests, 0) != coalesce(h.cached_requests, 0)
    )

{% endmacro %}

{#
    Per project and closed hour of the window: kept raw rows of `validated_requests`
    (int_usage_logs_validated) next to `hourly_by_model` (int_usage_hourly_by_model).
#}
{% macro kept_rows_against_hourly_by_model(validated_requests, hourly_by_model, logged) %}

with window_hours as (
    {{ reconciliation_hours(hourly_by_model, logged) }}
),

kept as (
    select project_id, {{ utc_hour('created_at') }} as hour_start, count(*) as requests,
        sum(tokens_input) as tokens_input
    from {{ validated_requests }}
    where
        is_kept
        and created_at >= (select first_hour from window_hours)
        and created_at < (select open_hour from window_hours)
    group by project_id, {{ utc_hour('created_at') }}
),

aggregated as (
    select project_id, hour_start, sum(total_requests) as requests, sum(tokens_input) as tokens_input
    from {{ hourly_by_model }}
    where
        hour_start >= (select first_hour from window_hours)
        and hour_start < (select open_hour from window_hours)
    group by project_id, hour_start
),

compared as (
    select
        coalesce(kept.project_id, aggregated.project_id) as project_id,
        coalesce(kept.hour_start, aggregated.hour_start) as hour_start,
        coalesce(kept.requests, 0) as kept_requests,
        coalesce(aggregated.requests, 0) as aggregated_requests,
        coalesce(kept.tokens_input, 0) as kept_tokens_input,
        coalesce(aggregated.tokens_input, 0) as aggregated_tokens_input
    from kept
    full outer join aggregated
        on kept.project_id = aggregated.project_id and kept.hour_start = aggregated.hour_start
)

{% endmacro %}
