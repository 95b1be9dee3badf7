{#
    Which buckets a mart must rebuild: those its producer replaced since the mart last ran. For
    the daily models (producer int_usage_hourly_by_model) this replaces a fixed lookback that had
    to reach back a whole extra day to be safe (a daily model does not know which hours of its
    newest day changed). For every mart (usage_by_model_daily and usage_aggregations_hourly read
    int_usage_hourly_by_model; usage_aggregations_daily reads usage_by_model_daily;
    project_savings_monthly and model_cost_counterfactual_monthly read usage_aggregations_daily) it
    also carries a producer run on its own (a Dagster partition, a `--select`ed range rebuild) to
    the next scheduled run of the mart.

    One row per consumer in `watchllm_pending_rebuilds`: `pending_from` is the earliest bucket the
    producer has replaced since the consumer's last scheduled run; `9999-12-31` means nothing is
    pending; NULL means unknown (a consumer seen for the first time, e.g. on a database built by a
    version without this table, or one whose producer table was dropped and is built anew). While
    it is unknown, until the consumer's next run that is not a range rebuild commits, the consumer
    falls back to its own lookback window and producers leave the row alone.

      - producer: bucket_replace lowers `pending_from` to the first bucket whose rows its batch
        changes (hour, or midnight of that day; a range rebuild: its batch's first bucket), in the
        producer's transaction (so the mark and the data commit together).
      - consumer: a pre-hook registers and locks its row (`for update`) before the batch is read,
        the batch reads from the day of `pending_from`, and a post-hook clears the mark, all in the
        consumer's transaction. A consumer that fails keeps its mark; a producer that commits while
        the consumer runs waits for the row lock and lowers the mark again after the consumer's
        commit, so no replaced hour is ever skipped.
      - engines: the table DDL and the row lock (`on conflict`, `for update`) are adapter-dispatched
        like the advisory lock in incremental_window.sql.
      - range rebuild (`--vars '{start, end}'`): the consumer rebuilds the range; it clears the mark
        only when the range covers everything pending (from the mark to the producer's newest hour).
#}

{% macro pending_rebuilds_relation() -%}
    {%- set schema = generate_schema_name(env_var('WATCHLLM_ANALYTICS_SCHEMA', 'analytics'), none) -%}
    {{ return(api.Relation.create(database=(target.database if target.database is defined else none), schema=schema, identifier='watchllm_pending_rebuilds')) }}
{%- endmacro %}

{% macro nothing_pending() -%}{{ utc_literal('9999-12-31') }}{%- endmacro %}

{# on-run-start: the bookkeeping table (no tenant data; row level security on, no policy: owner only). #}
{% macro create_pending_rebuilds() -%}{{ return(adapter.dispatch('create_pending_rebuilds', 'watchllm_analytics')()) }}{%- endmacro %}
{% macro default__create_pending_rebuilds() -%}select 1{%- endmacro %}
{% macro postgres__create_pending_rebuilds() -%}
    {%- if execute -%}
        {%- set relation = pending_rebuilds_relation() -%}
        create schema if not exists {{ relation.schema }};
        create table if not exists {{ relation }} (
            consumer text primary key,
            producer text not null,
            pending_from timestamptz
        );
        alter table {{ relation }} enable row level security;
        -- a producer that is missing now is created from scratch by this build, outside
        -- bucket_replace (no mark): its consumers go back to their own lookback until they next run
        update {{ relation }} set pending_from = null
        where to_regclass(quote_ident('{{ relation.schema }}') || '.' || quote_ident(producer)) is null
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#
    Producer side, called by bucket_replace inside the producer's transaction, before the batch
    replaces its buckets. `grain` is the type of the producer's bucket column: 'hour' (a
    timestamptz) or 'day' (a UTC date). The mark is the first bucket whose rows the batch changes:
    the batch's rows that the table does not hold, and the table's rows in the batch's buckets that
    the batch does not hold (every column compared, NULLs equal). A scheduled run re-aggregates its
    whole lookback window, but the hours before the newest one rarely change (late rows); the marts
    then rebuild from the first changed bucket, not from the window's start. Above all, the daily
    marts do not re-merge the whole previous day in the first hours after midnight. A range rebuild
    (a backfill, maybe of all history) marks its first bucket without comparing.
#}
{% macro mark_pending_rebuilds(arg_dict, bucket_column, grain) -%}
    {%- set batch_relation = arg_dict['temp_relation'] -%}
    {%- set columns_csv = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    {%- set first_bucket -%}
    {%- if is_range_rebuild() -%}
    (select min({{ bucket_column }}) from {{ batch_relation }})
    {%- else -%}
    (
        with batch_rows as materialized (
            select {{ columns_csv }} from {{ batch_relation }}
        ),
        replaced_rows as materialized (
            select {{ columns_csv }} from {{ arg_dict['target_relation'] }} as kept
            where {{ in_batch_buckets(arg_dict, 'kept') }}
        )
        select min({{ bucket_column }}) from (
            (select * from batch_rows except all select * from replaced_rows)
            union all
            (select * from replaced_rows except all select * from batch_rows)
        ) as changed_rows
    )
    {%- endif -%}
    {%- endset -%}
    update {{ pending_rebuilds_relation() }}
    set pending_from = least(pending_from, {{ utc_midnight(first_bucket) if grain == 'day' else first_bucket }})
    where producer = '{{ this.identifier }}' and pending_from is not null
{%- endmacro %}

{#
    The producer whose marks this model (a consumer) takes, from the graph: of the model's own
    parents, the one whose config has `marks_pending_rebuilds` (when several do, the one the others
    feed, e.g. usage_aggregations_daily rather than usage_by_model_daily). So a consumer names no
    producer, and a renamed model cannot leave a stale name behind. None at parse time.
#}
{% macro pending_producer() -%}
    {%- if not execute -%}{{ return(none) }}{%- endif -%}
    {%- set marking = [] -%}
    {%- for parent_id in model.depends_on.nodes -%}
        {%- set parent = graph.nodes.get(parent_id) -%}
        {%- if parent is not none and parent.config.get('marks_pending_rebuilds') -%}
            {%- do marking.append(parent) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set nearest = [] -%}
    {%- for candidate in marking -%}
        {%- set feeds_another = [] -%}
        {%- for other in marking if other.unique_id != candidate.unique_id and candidate.unique_id in other.depends_on.nodes -%}
            {%- do feeds_another.append(other) -%}
        {%- endfor -%}
        {%- if not feeds_another -%}{%- do nearest.append(candidate) -%}{%- endif -%}
    {%- endfor -%}
    {%- if nearest | length != 1 -%}
        {{ exceptions.raise_compiler_error(model.name ~ " takes pending-rebuild marks but reads " ~ (nearest | length)
            ~ " producers that set them (config marks_pending_rebuilds); it must read exactly one") }}
    {%- endif -%}
    {{ return(nearest[0]) }}
{%- endmacro %}

{# Consumer pre-hook: register (unknown = fall back to the lookback) and hold the row until commit. #}
{% macro lock_pending_rebuild() -%}{{ return(adapter.dispatch('lock_pending_rebuild', 'watchllm_analytics')()) }}{%- endmacro %}
{% macro default__lock_pending_rebuild() -%}select 1{%- endmacro %}
{% macro postgres__lock_pending_rebuild() -%}
    {%- set producer = pending_producer() -%}
    {%- if producer is none -%}{{ return('select 1') }}{%- endif -%}
    {%- set relation = pending_rebuilds_relation() -%}
    insert into {{ relation }} (consumer, producer, pending_from)
    values ('{{ this.identifier }}', '{{ producer.alias }}', null)
    -- a consumer that now reads another producer starts over from its own lookback (unknown)
    on conflict (consumer) do update set producer = excluded.producer, pending_from = null
        where {{ relation }}.producer <> excluded.producer;
    select pending_from from {{ relation }} where consumer = '{{ this.identifier }}' for update
{%- endmacro %}

{# Whether this engine keeps the pending-rebuild marks (Postgres); elsewhere consumers use their own lookback. #}
{% macro uses_pending_rebuilds() -%}{{ return(adapter.dispatch('uses_pending_rebuilds', 'watchllm_analytics')()) }}{%- endmacro %}
{% macro default__uses_pending_rebuilds() -%}{{ return(false) }}{%- endmacro %}
{% macro postgres__uses_pending_rebuilds() -%}{{ return(true) }}{%- endmacro %}

{# Consumer filter: the first instant to rebuild, or NULL when the consumer is not registered or unknown. #}
{% macro pending_window_start(grain) -%}
    (
        select {{ bucket_floor('pending_from', grain) }}
        from {{ pending_rebuilds_relation() }}
        where consumer = '{{ this.identifier }}'
    )
{%- endmacro %}

{# Consumer post-hook: everything pending is rebuilt now (see the header for range rebuilds). #}
{% macro clear_pending_rebuild() -%}{{ return(adapter.dispatch('clear_pending_rebuild', 'watchllm_analytics')()) }}{%- endmacro %}
{% macro default__clear_pending_rebuild() -%}select 1{%- endmacro %}
{% macro postgres__clear_pending_rebuild() -%}
    {%- set producer_node = pending_producer() -%}
    {%- if producer_node is none -%}{{ return('select 1') }}{%- endif -%}
    {%- set producer = ref(producer_node.name) -%}
    {%- set newest = 'max(' ~ producer_node.config.get('bucket_column') ~ ')' -%}
    update {{ pending_rebuilds_relation() }}
    set pending_from = {{ nothing_pending() }}
    where
        consumer = '{{ this.identifier }}'
    {%- if is_range_rebuild() %}
        and pending_from >= {{ utc_literal(rebuild_bound('start')) }}
        and {{ utc_literal(rebuild_bound('end')) }} >= (
            select {{ utc_midnight(newest ~ ' + 1') if producer_node.config.get('marks_pending_rebuilds') == 'day' else newest ~ ' + ' ~ hours(1) }}
            from {{ producer }}
        )
    {%- endif %}
{%- endmacro %}
