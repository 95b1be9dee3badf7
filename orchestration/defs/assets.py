"""Dagster assets: every dbt model and seed (three @dbt_assets, one per partitions definition) and usage_logs."""

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    AutomationCondition,
    BackfillPolicy,
    DataVersion,
    FreshnessPolicy,
    ObserveResult,
    RetryRequested,
    multi_observable_source_asset,
)
from dagster_dbt import (
    DagsterDbtCliRuntimeError,
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)
from psycopg import sql

from orchestration import settings
from orchestration.core import database
from orchestration.core.errors import UserError
from orchestration.defs.partitions import daily_partitions, hourly_partitions, rebuild_vars
from orchestration.defs.resources import dbt_project, use_resolved_database

# Models are picked by dbt tag (config tags in the model files), so a new model needs no Python edit.
HOURLY_MODELS = "tag:hourly"
DAILY_MODELS = "tag:daily"
DBT_POOL = settings.DBT_POOL
# Signs of a transient database problem in a failed dbt run: those runs are retried, failed tests are not.
TRANSIENT_ERRORS = (
    "could not connect",
    "connection refused",
    "server closed the connection",
    "terminating connection",
    "connection timed out",
    "the database system is starting up",
    "the database system is shutting down",
)


class WatchllmTranslator(DagsterDbtTranslator):
    """Asset keys by model name, groups by dbt folder (staging / intermediate / marts), owners from
    `meta.owner` in the dbt YAML (default team:analytics)."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "seed":
            return "pricing"
        if dbt_resource_props["resource_type"] == "source":
            return "proxy"
        fqn = dbt_resource_props.get("fqn", [])
        return fqn[1] if len(fqn) > 2 else "marts"

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return AssetKey([dbt_resource_props["name"]])

    def get_owners(self, dbt_resource_props: Mapping[str, Any]):
        owner = (dbt_resource_props.get("meta") or {}).get("owner") or settings.DEFAULT_OWNER
        return [owner]


translator = WatchllmTranslator(
    settings=DagsterDbtTranslatorSettings(enable_asset_checks=True, enable_source_tests_as_checks=True)
)


# Per-asset figures added to each materialization: (table, bucket column) of the time-bucketed outputs.
BUCKETED = {
    "int_usage_hourly_by_model": "hour_start",
    "usage_aggregations_hourly": "hour_start",
    "usage_aggregations_daily": "date",
    "usage_by_model_daily": "date",
    "int_usage_hourly_by_dimension": "hour_start",
    "usage_by_dimension_daily": "date",
    "usage_aggregations_local_daily": "date",  # local dates: the range's UTC dates, a close enough count
}


def _build(context: AssetExecutionContext, dbt: DbtCliResource, extra_args: list[str]) -> Iterator:
    use_resolved_database()
    window = context.partition_time_window if context.has_partition_key_range or context.has_partition_key else None
    try:
        yield from _stream(context, dbt, extra_args, window)
    except DagsterDbtCliRuntimeError as exc:
        if any(sign in str(exc).lower() for sign in TRANSIENT_ERRORS):
            raise RetryRequested(max_retries=2, seconds_to_wait=20) from exc
        raise


def _stream(context: AssetExecutionContext, dbt: DbtCliResource, extra_args: list[str], window) -> Iterator:
    figures_by_model: dict[str, dict[str, Any]] = {}  # a range run emits one event per partition: count once
    for event in dbt.cli(["build", *extra_args, *settings.PRODUCTION_DBT_ARGS], context=context).stream():
        key = getattr(event, "asset_key", None)
        if key is None and getattr(event, "output_name", None):
            key = context.asset_key_for_output(event.output_name)
        if key is not None and hasattr(event, "with_metadata") and getattr(event, "metadata", None) is not None:
            extra: dict[str, Any] = {"dbt_args": " ".join(extra_args) or "(lookback window)"}
            if window is not None:
                extra["partition_range"] = f"{window.start.isoformat()} .. {window.end.isoformat()}"
            model = key.path[-1]
            if model not in figures_by_model:
                figures_by_model[model] = _figures(model, window)
            extra.update(figures_by_model[model])
            event = event.with_metadata({**event.metadata, **extra})
        yield event


def _figures(model: str, window) -> dict[str, Any]:
    """Rows written in the range and the quality counts a person looks at after a run."""
    if model != "usage_logs_rejected" and (model not in BUCKETED or window is None):
        return {}
    schema = settings.analytics_schema()
    with database.cursor(database.resolve()) as cur:
        if model == "usage_logs_rejected":
            # the run's window only (an index range of usage_logs): counting all of history every run
            # would cost what history costs; the deep check counts everything
            start, end = (
                (window.start, window.end)
                if window is not None
                else (dt.datetime.now(dt.UTC) - dt.timedelta(hours=settings.lookback_hours() + 1), None)
            )
            (count,) = cur.execute(
                sql.SQL(
                    "select count(*) from {} where created_at >= %s and (%s::timestamptz is null or created_at < %s)"
                ).format(sql.Identifier(schema, model)),
                (start, end, end),
            ).fetchone()
            return {"quarantined_rows_in_window": count, "quarantine_window_start": start.isoformat()}
        if model in BUCKETED and window is not None:
            column = sql.Identifier(BUCKETED[model])
            bound = (
                sql.SQL("%s::timestamptz")
                if BUCKETED[model] == "hour_start"
                else sql.SQL("(%s::timestamptz at time zone 'UTC')::date")
            )
            rows, unpriced = cur.execute(
                sql.SQL(
                    "select count(*), coalesce(sum(unpriced_requests), 0) from {} where {} >= {} and {} < {}"
                ).format(sql.Identifier(schema, model), column, bound, column, bound),
                (window.start, window.end),
            ).fetchone()
            return {"buckets_in_range": rows, "unpriced_requests_in_range": int(unpriced)}
    return {}


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    exclude=f"{HOURLY_MODELS} {DAILY_MODELS}",
    dagster_dbt_translator=translator,
    name="watchllm_unpartitioned",
    pool=DBT_POOL,
)
def unpartitioned_dbt_assets(context: AssetExecutionContext, dbt: DbtCliResource):
    """Seed, staging and intermediate views, the quarantine view and the dashboard function."""
    yield from _build(context, dbt, [])


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    select=HOURLY_MODELS,
    dagster_dbt_translator=translator,
    partitions_def=hourly_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    name="watchllm_hourly",
    pool=DBT_POOL,
)
def hourly_dbt_assets(context: AssetExecutionContext, dbt: DbtCliResource):
    """The hourly pass. A single partition (the schedule) also re-reads the lookback before it;
    a backfill of any range is one dbt invocation over exactly that range."""
    lookback = settings.lookback_hours() if _single_partition(context) else 0
    # the daily roll-up test belongs to the daily run, which has not caught up with this hour yet
    exclude = ["--exclude", "assert_daily_matches_hourly_by_model"]
    yield from _build(context, dbt, ["--vars", rebuild_vars(context.partition_time_window, lookback), *exclude])


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    select=DAILY_MODELS,
    dagster_dbt_translator=translator,
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    name="watchllm_daily",
    pool=DBT_POOL,
)
def daily_dbt_assets(context: AssetExecutionContext, dbt: DbtCliResource):
    """Daily, per-model and monthly marts for the partition range, rolled up from the hourly sums.

    A single partition (the schedule) also rebuilds the day before: hourly runs keep changing that
    day's last hours until their lookback has passed it."""
    lookback = 24 if _single_partition(context) else 0
    yield from _build(context, dbt, ["--vars", rebuild_vars(context.partition_time_window, lookback)])


def _single_partition(context: AssetExecutionContext) -> bool:
    return context.partition_key_range.start == context.partition_key_range.end


def usage_logs_freshness() -> FreshnessPolicy:
    """The source freshness dbt declares for usage_logs (models/staging/proxy/_proxy__sources.yml), as
    Dagster's policy: one threshold, read by `dbt source freshness` and by Dagster alike."""
    manifest = json.loads(dbt_project.manifest_path.read_text())
    source = manifest["sources"]["source.watchllm_analytics.proxy.usage_logs"]
    freshness = source.get("freshness") or (source.get("config") or {}).get("freshness") or {}

    def window(name: str) -> dt.timedelta | None:
        after = freshness.get(name) or {}
        return dt.timedelta(**{f"{after['period']}s": int(after["count"])}) if after.get("count") else None

    warn, fail = window("warn_after"), window("error_after")
    if fail is None:
        raise UserError("the usage_logs source in dbt has no freshness error_after: declare it in its YAML")
    return FreshnessPolicy.time_window(fail_window=fail, warn_window=warn)


@multi_observable_source_asset(
    specs=[
        AssetSpec(
            key=AssetKey(["proxy", "usage_logs"]),
            group_name="proxy",
            description="The proxy's usage_logs table; each observation records the newest created_at and last "
            "hour's rows. Fresh while a row arrived within the source freshness dbt declares.",
            freshness_policy=usage_logs_freshness(),
            automation_condition=AutomationCondition.on_cron("*/15 * * * *"),
        )
    ],
)
def usage_logs() -> Iterator[ObserveResult]:
    conn = database.resolve()
    table = sql.Identifier(settings.source_schema(), "usage_logs")
    with database.cursor(conn) as cur:
        newest, last_hour = cur.execute(
            sql.SQL(
                "select max(created_at), count(*) filter (where created_at >= now() - interval '1 hour'"
                " and created_at <= now()) from {} where created_at <= now() + interval '5 minutes'"
            ).format(table)
        ).fetchone()
    metadata: dict[str, Any] = {"rows_last_hour": last_hour}
    if newest is not None:
        metadata["newest_created_at"] = newest.isoformat()
        metadata["dagster/last_updated_timestamp"] = newest.timestamp()
    yield ObserveResult(
        asset_key=AssetKey(["proxy", "usage_logs"]),
        data_version=DataVersion(newest.isoformat() if newest else "empty"),
        metadata=metadata,
    )
