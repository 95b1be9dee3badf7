"""Asset checks beyond dbt's tests: daily vs raw reconciliation, the cache hit-rate drop alert, the forecast."""

from decimal import Decimal

from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, asset_check
from psycopg import sql

from orchestration import settings
from orchestration.core import alerts, database, reconcile


def hit_rate_drops(cur) -> list[tuple]:
    """(project, day rate %, trailing 7-day rate %) of the projects the cache_hit_rate_drop alert rule
    flags for the last complete UTC day: the rule of `alerts check`, evaluated the same way."""
    evaluation = alerts.evaluate(cur)
    drops = [c for c in evaluation.conditions if c.rule == "cache_hit_rate_drop"]
    drops.sort(key=lambda c: c.observed - Decimal(c.details["baseline_hit_rate_pct"]))
    return [(c.project_id, c.observed, Decimal(c.details["baseline_hit_rate_pct"])) for c in drops]


@asset_check(asset=AssetKey(["usage_aggregations_daily"]), name="cache_hit_rate_drop", blocking=False)
def cache_hit_rate_drop() -> AssetCheckResult:
    """Warns when a project's cache hit rate over the last complete day falls more than
    WATCHLLM_HIT_RATE_DROP_POINTS (default 10) points below its trailing 7-day rate (the alert rule
    of the same name; the usage_alerts sensor delivers it)."""
    with database.cursor(database.resolve()) as cur:
        drops = hit_rate_drops(cur)
    return AssetCheckResult(
        passed=not drops,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "projects_dropped": len(drops),
            "threshold_points": float(settings.hit_rate_drop_points()),
            "worst": ", ".join(f"{p}: {d}% vs {w}%" for p, d, w in drops[:5]) or "none",
        },
    )


@asset_check(asset=AssetKey(["usage_aggregations_daily"]), name="daily_matches_raw_rows", blocking=False)
def daily_matches_raw_rows() -> AssetCheckResult:
    """Fails when the closed hours of a day of the last WATCHLLM_RECONCILE_DAYS (default 7) differ from
    the kept raw rows: rows that arrived later than the lookback window. Heal: backfill the reported days
    (daily_usage partitions) or run `watchllm-analytics reconcile --heal`."""
    with database.cursor(database.resolve()) as cur:
        mismatches = reconcile.mismatched_days(cur, settings.reconcile_days())
    ranges = reconcile.day_ranges([m.day for m in mismatches])
    return AssetCheckResult(
        passed=not mismatches,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "window_days": settings.reconcile_days(),
            "days_differing": len(mismatches),
            "days": ", ".join(str(m.day) for m in mismatches) or "none",
            "worst": mismatches[0].describe() if mismatches else "none",
            "heal": (
                "backfill daily_usage partitions "
                + ", ".join(f"{s}..{e}" for s, e in ranges)
                + " or run `watchllm-analytics reconcile --heal`"
            )
            if ranges
            else "nothing to heal",
        },
    )


# Per project and day of the window: the key rows and the end-user rows each add up to the day.
DIMENSIONS_ADD_UP_SQL = """
select count(*) as days_differing, min(daily.project_id::text || ' ' || daily.date::text) as example
from {daily} as daily
cross join (values ('api_key'), ('end_user')) as dimensions (dimension)
join lateral (
    select sum(d.total_requests) as requests, sum(d.total_cost_usd) as cost, sum(d.error_requests) as errors
    from {by_dimension} as d
    where d.project_id = daily.project_id and d.date = daily.date and d.dimension = dimensions.dimension
) as summed on summed.requests is not null
where daily.date >= current_date - %(days)s
  and (summed.requests, summed.cost, summed.errors)
      is distinct from (daily.total_requests, daily.total_cost_usd, daily.error_requests)
"""


@asset_check(asset=AssetKey(["usage_by_dimension_daily"]), name="keys_and_end_users_add_up_to_daily", blocking=False)
def keys_and_end_users_add_up_to_daily() -> AssetCheckResult:
    """Fails when, on a day of the last WATCHLLM_RECONCILE_DAYS (default 7), a project's api_key rows
    or end_user rows do not add up to its usage_aggregations_daily row (requests, cost, errors). Tag
    rows are not checked this way: a request counts once under each of its tags."""
    schema = settings.analytics_schema()
    query = sql.SQL(DIMENSIONS_ADD_UP_SQL).format(
        daily=sql.Identifier(schema, "usage_aggregations_daily"),
        by_dimension=sql.Identifier(schema, "usage_by_dimension_daily"),
    )
    with database.cursor(database.resolve()) as cur:
        differing, example = cur.execute(query, {"days": settings.reconcile_days()}).fetchone()
    return AssetCheckResult(
        passed=differing == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={"window_days": settings.reconcile_days(), "days_differing": differing, "example": example or "none"},
    )


FORECAST_MONTH_TO_DATE_SQL = """
with month_to_date as (
    select f.project_id, f.month_to_date_cost_usd as forecast_side,
        (select coalesce(sum(d.total_cost_usd), 0) from {daily} as d
         where d.project_id = f.project_id and d.date >= f.month and d.date <= f.as_of_date) as daily_side
    from {forecast} as f
)
select count(*) as projects, count(*) filter (where forecast_side <> daily_side) as differing,
    min(project_id::text) filter (where forecast_side <> daily_side) as example
from month_to_date
"""


def forecast_month_to_date_differences(cur) -> tuple[int, int, str | None]:
    """(projects, projects whose month to date differs from usage_aggregations_daily, one of them)."""
    schema = settings.analytics_schema()
    query = sql.SQL(FORECAST_MONTH_TO_DATE_SQL).format(
        daily=sql.Identifier(schema, "usage_aggregations_daily"),
        forecast=sql.Identifier(schema, "project_cost_forecast"),
    )
    return cur.execute(query).fetchone()


@asset_check(asset=AssetKey(["project_cost_forecast"]), name="forecast_month_to_date_matches_daily", blocking=False)
def forecast_month_to_date_matches_daily() -> AssetCheckResult:
    """Fails when a project's month_to_date_cost_usd is not exactly the sum of its days in usage_aggregations_daily
    (one index range per project: the forecast's rows are the month's active projects)."""
    with database.cursor(database.resolve()) as cur:
        projects, differing, example = forecast_month_to_date_differences(cur)
    return AssetCheckResult(
        passed=differing == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={"projects": projects, "projects_differing": differing, "example": example or "none"},
    )
