"""Asset checks beyond dbt's tests: daily vs raw reconciliation, the cache hit-rate drop alert, freshness."""

from decimal import Decimal

from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, asset_check, build_last_update_freshness_checks
from psycopg import sql

from orchestration import settings
from orchestration.core import database, reconcile

HIT_RATE_DROP_SQL = """
with bounds as (
    select max(date) as last_day from {daily} where date < (now() at time zone 'UTC')::date
),
per_project as (
    select
        project_id,
        sum(total_requests) filter (where date = bounds.last_day) as day_requests,
        sum(cached_requests) filter (where date = bounds.last_day) as day_cached,
        sum(total_requests) filter (where date < bounds.last_day) as week_requests,
        sum(cached_requests) filter (where date < bounds.last_day) as week_cached
    from {daily}, bounds
    where date between bounds.last_day - 7 and bounds.last_day
    group by project_id
)
select
    project_id,
    round(100.0 * day_cached / day_requests, 2) as day_rate,
    round(100.0 * week_cached / week_requests, 2) as week_rate
from per_project
where day_requests >= %(min_requests)s and week_requests >= %(min_requests)s
  and 100.0 * week_cached / week_requests - 100.0 * day_cached / day_requests > %(points)s
order by 100.0 * week_cached / week_requests - 100.0 * day_cached / day_requests desc
"""


def hit_rate_drops(cur, points: Decimal | None = None, min_requests: int | None = None) -> list:
    """Projects whose hit rate on the last complete UTC day is more than `points` below their trailing 7 days."""
    daily = sql.Identifier(settings.analytics_schema(), "usage_aggregations_daily")
    query = sql.SQL(HIT_RATE_DROP_SQL).format(daily=daily)
    points = settings.hit_rate_drop_points() if points is None else points
    min_requests = settings.hit_rate_min_requests() if min_requests is None else min_requests
    return cur.execute(query, {"points": points, "min_requests": min_requests}).fetchall()


@asset_check(asset=AssetKey(["usage_aggregations_daily"]), name="cache_hit_rate_drop", blocking=False)
def cache_hit_rate_drop() -> AssetCheckResult:
    """Warns when a project's cache hit rate over the last complete day falls more than
    WATCHLLM_HIT_RATE_DROP_POINTS (default 10) points below its trailing 7-day rate."""
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


usage_logs_freshness_checks = build_last_update_freshness_checks(
    assets=[AssetKey(["proxy", "usage_logs"])],
    lower_bound_delta=settings.logs_stale_after(),
    severity=AssetCheckSeverity.WARN,
)
