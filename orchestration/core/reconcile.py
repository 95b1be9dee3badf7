"""Reconciliation: recent closed days where the aggregates disagree with the raw rows, and the fix.

A row that arrives later than the lookback window is never picked up by a scheduled build; this
compares, per UTC day, the kept raw rows (through int_usage_logs_priced, the row-level rules)
with usage_aggregations_daily (built through the hourly pass), and heals reported days with a
range rebuild of exactly those days.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from psycopg import sql

from orchestration import settings
from orchestration.core import retention
from orchestration.core.errors import UserError

MAX_WINDOW_DAYS = 366

# The closed past: from the day after the oldest day that still has raw rows (retention may have
# cut it part-way), and never before the raw retention watermark (days retention touched keep their
# aggregates), up to the first hour the next scheduled build still rebuilds (closed_until).
# open_day, the day of closed_until, is closed only up to that hour: its earlier hours are
# compared through the hourly aggregates, whole days before it through the daily ones.
WINDOW_SQL = """
with bounds as (
    select max(hour_start) - %(lookback)s * interval '1 hour' as closed_until
    from {hourly}
)
select
    greatest(
        (closed_until at time zone 'UTC')::date - %(days)s,
        (select (min(created_at) at time zone 'UTC')::date + 1 from {logs}),
        (%(retained_from)s::timestamptz at time zone 'UTC')::date
    ) as first_day,
    (closed_until at time zone 'UTC')::date as open_day,
    closed_until
from bounds
"""

COMPARE_SQL = """
with raw_days as (
    select
        usage_date as day,
        count(*) as requests,
        count(*) filter (where is_cached) as cached_requests,
        sum(tokens_input) as tokens_input,
        sum(tokens_output) as tokens_output,
        sum(cost_usd) as cost_usd,
        sum(potential_cost_usd) as potential_cost_usd
    from {priced}
    where created_at >= (%(first_day)s::date::timestamp at time zone 'UTC')
      and created_at < %(closed_until)s
    group by usage_date
),
aggregated_buckets as (
    select date as day, total_requests, cached_requests, tokens_input, tokens_output, total_cost_usd,
        total_potential_cost_usd
    from {daily}
    where date >= %(first_day)s and date < %(open_day)s
    union all
    select (hour_start at time zone 'UTC')::date, total_requests, cached_requests, tokens_input, tokens_output,
        total_cost_usd, total_potential_cost_usd
    from {hourly}
    where hour_start >= greatest(%(first_day)s, %(open_day)s)::date::timestamp at time zone 'UTC'
      and hour_start < %(closed_until)s
),
aggregated_days as (
    select
        day,
        sum(total_requests) as requests,
        sum(cached_requests) as cached_requests,
        sum(tokens_input) as tokens_input,
        sum(tokens_output) as tokens_output,
        sum(total_cost_usd) as cost_usd,
        sum(total_potential_cost_usd) as potential_cost_usd
    from aggregated_buckets
    group by day
)
select
    day,
    coalesce(raw_days.requests, 0) as raw_requests,
    coalesce(aggregated_days.requests, 0) as aggregated_requests,
    raw_days.cost_usd as raw_cost_usd,
    aggregated_days.cost_usd as aggregated_cost_usd
from raw_days
full join aggregated_days using (day)
where (raw_days.requests, raw_days.cached_requests, raw_days.tokens_input, raw_days.tokens_output,
       raw_days.cost_usd, raw_days.potential_cost_usd)
      is distinct from
      (aggregated_days.requests, aggregated_days.cached_requests, aggregated_days.tokens_input,
       aggregated_days.tokens_output, aggregated_days.cost_usd, aggregated_days.potential_cost_usd)
order by day
"""


@dataclass(frozen=True)
class DayMismatch:
    day: dt.date
    raw_requests: int
    aggregated_requests: int
    raw_cost_usd: object
    aggregated_cost_usd: object

    def describe(self) -> str:
        return (
            f"{self.day}: raw {self.raw_requests} requests / ${self.raw_cost_usd}, "
            f"aggregated {self.aggregated_requests} requests / ${self.aggregated_cost_usd}"
        )


def check_window(days: int) -> None:
    if not isinstance(days, int) or days < 1 or days > MAX_WINDOW_DAYS:
        raise UserError(f"the reconciliation window must be 1..{MAX_WINDOW_DAYS} days, got {days}")


def mismatched_days(cur, days: int | None = None, lookback_hours: int | None = None) -> list[DayMismatch]:
    """Days of the last `days` whose closed hours' aggregates differ from the kept raw rows."""
    days = settings.reconcile_days() if days is None else days
    lookback_hours = settings.lookback_hours() if lookback_hours is None else lookback_hours
    check_window(days)
    if lookback_hours < 0:
        raise UserError(f"the lookback must be 0 hours or more, got {lookback_hours}")
    schema = settings.analytics_schema()
    window = cur.execute(
        sql.SQL(WINDOW_SQL).format(
            logs=sql.Identifier(settings.source_schema(), "usage_logs"),
            hourly=sql.Identifier(schema, "int_usage_hourly_by_model"),
        ),
        {
            "days": days,
            "lookback": lookback_hours,
            "retained_from": retention.watermark(cur.connection, "usage_logs")
            or dt.datetime(1900, 1, 1, tzinfo=dt.UTC),
        },
    ).fetchone()
    first_day, open_day, closed_until = window
    if first_day is None or closed_until is None or first_day > open_day:
        return []
    rows = cur.execute(
        sql.SQL(COMPARE_SQL).format(
            priced=sql.Identifier(schema, "int_usage_logs_priced"),
            daily=sql.Identifier(schema, "usage_aggregations_daily"),
            hourly=sql.Identifier(schema, "usage_aggregations_hourly"),
        ),
        {"first_day": first_day, "open_day": open_day, "closed_until": closed_until},
    ).fetchall()
    return [DayMismatch(*row) for row in rows]


def day_ranges(days: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Consecutive days merged into [start, end) ranges."""
    ranges: list[tuple[dt.date, dt.date]] = []
    for day in sorted(set(days)):
        if ranges and ranges[-1][1] == day:
            ranges[-1] = (ranges[-1][0], day + dt.timedelta(days=1))
        else:
            ranges.append((day, day + dt.timedelta(days=1)))
    return ranges


def rebuild_args(start: dt.date, end: dt.date) -> list[str]:
    """dbt arguments that rebuild every aggregate for the UTC days [start, end)."""
    if end <= start:
        raise UserError(f"the rebuild range is empty: start {start} must be before end {end}")
    range_vars = json.dumps({"start": start.isoformat(), "end": end.isoformat()})
    # the resolved prices too: a price changed in the seed table reaches the rebuilt days
    return [
        "build",
        "--select",
        "int_model_prices_resolved+",
        "int_usage_hourly_by_model+",
        "--vars",
        range_vars,
        *settings.PRODUCTION_DBT_ARGS,
    ]
