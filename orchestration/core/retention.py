"""Retention: delete old raw logs and aggregates by whole UTC days, oldest first.

Defaults follow the design guide: hourly aggregates 90 days, daily aggregates 365 days, raw logs
kept (the proxy owns them; set a number to delete them too). The monthly tables are kept.

Each day of each table goes in one transaction, which also moves that table's retention watermark
(analytics.watchllm_table_bounds) past the day. So a run killed at any moment leaves every
day whole or gone, and every producer knows which days retention touched: no build, rebuild,
reconcile or heal ever replaces a bucket of such a day (macros/incremental/table_bounds.sql).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from psycopg import sql

from orchestration import settings
from orchestration.core.errors import UserError

FOREVER = None


def parse_days(text: str | int | None, what: str) -> int | None:
    """A retention period: a whole number of days >= 1, or 'forever'."""
    if text is None or (isinstance(text, str) and text.strip().lower() in {"forever", "keep", ""}):
        return FOREVER
    try:
        days = int(text)
    except (TypeError, ValueError):
        raise UserError(f"{what} must be a whole number of days or 'forever', got {text!r}") from None
    if days < 1:
        raise UserError(f"{what} must be at least 1 day (or 'forever'), got {days}")
    return days


@dataclass(frozen=True)
class Policy:
    raw_days: int | None = FOREVER
    hourly_days: int | None = 90
    daily_days: int | None = 365

    @classmethod
    def from_env(cls) -> Policy:
        """WATCHLLM_RETAIN_RAW_DAYS / _HOURLY_DAYS / _DAILY_DAYS: a number of days or 'forever'."""
        defaults = settings.retention_defaults()
        return cls(
            raw_days=parse_days(defaults["raw_days"], "WATCHLLM_RETAIN_RAW_DAYS"),
            hourly_days=parse_days(defaults["hourly_days"], "WATCHLLM_RETAIN_HOURLY_DAYS"),
            daily_days=parse_days(defaults["daily_days"], "WATCHLLM_RETAIN_DAILY_DAYS"),
        )

    def targets(self) -> list[tuple[str, str, str, int | None]]:
        """(schema, table, time column, days) for every table the policy trims."""
        analytics, source = settings.analytics_schema(), settings.source_schema()
        return [
            (source, "usage_logs", "created_at", self.raw_days),
            (analytics, "int_usage_hourly_by_model", "hour_start", self.hourly_days),
            (analytics, "usage_aggregations_hourly", "hour_start", self.hourly_days),
            (analytics, "int_usage_hourly_by_dimension", "hour_start", self.hourly_days),
            (analytics, "usage_aggregations_daily", "date", self.daily_days),
            (analytics, "usage_by_model_daily", "date", self.daily_days),
            (analytics, "usage_by_dimension_daily", "date", self.daily_days),
            (analytics, "int_usage_daily_by_tier_and_band", "date", self.daily_days),
            (analytics, "usage_aggregations_local_daily", "date", self.daily_days),
        ]


def cutoff(days: int, today: dt.date) -> dt.datetime:
    """UTC midnight `days` days before today: rows before it go."""
    return dt.datetime.combine(today - dt.timedelta(days=days), dt.time(), tzinfo=dt.UTC)


WATERMARKS_DDL = """
create table if not exists {watermarks} (
    table_name text primary key,
    retained_from timestamptz,
    newest_bucket timestamptz,
    updated_at timestamptz not null default now()
);
alter table {watermarks} enable row level security
"""


def watermarks_relation() -> sql.Identifier:
    return sql.Identifier(settings.analytics_schema(), "watchllm_table_bounds")


def ensure_watermarks(conn) -> None:
    """The table of bounds, as dbt's on-run-start creates it (create_table_bounds; it also grants it)."""
    with conn.transaction():
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(settings.analytics_schema())))
        for statement in WATERMARKS_DDL.split(";"):
            if statement.strip():
                conn.execute(sql.SQL(statement).format(watermarks=watermarks_relation()))


def watermark(conn, table: str) -> dt.datetime | None:
    """The first instant of `table` retention has not touched (None: it never ran on that table)."""
    exists = conn.execute(
        "select to_regclass(%s) is not null",
        (f'"{settings.analytics_schema()}".watchllm_table_bounds',),
    ).fetchone()[0]
    if not exists:
        return None
    row = conn.execute(
        sql.SQL("select retained_from from {} where table_name = %s").format(watermarks_relation()), (table,)
    ).fetchone()
    return row[0] if row else None


def raise_watermark(conn, table: str, instant: dt.datetime) -> None:
    """Move `table`'s watermark to `instant` (never back): days before it count as touched by retention."""
    conn.execute(
        sql.SQL(
            "insert into {} as kept (table_name, retained_from) values (%s, %s) on conflict (table_name) do update"
            " set retained_from = greatest(excluded.retained_from, kept.retained_from), updated_at = now()"
        ).format(watermarks_relation()),
        (table, instant),
    )


def apply(conn, policy: Policy, dry_run: bool = False, today: dt.date | None = None, progress=None) -> dict[str, int]:
    """Delete what the policy no longer keeps, a whole UTC day per transaction, oldest day first;
    rows deleted per table. `conn` must be in autocommit mode."""
    today = today or dt.datetime.now(dt.UTC).date()
    deleted: dict[str, int] = {}
    if not dry_run:
        ensure_watermarks(conn)
    for schema, table, column, days in policy.targets():
        if days is FOREVER:
            continue
        relation = sql.Identifier(schema, table)
        if conn.execute("select to_regclass(%s) is null", (f'"{schema}"."{table}"',)).fetchone()[0]:
            continue  # not built on this database (yet)
        bound = cutoff(days, today)
        value = bound.date() if column == "date" else bound
        column_id = sql.Identifier(column)
        if dry_run:
            count = conn.execute(
                sql.SQL("select count(*) from {} where {} < %s").format(relation, column_id), (value,)
            ).fetchone()[0]
            deleted[f"{schema}.{table}"] = count
            continue
        total = 0
        while True:
            # the oldest day still there (an index lookup; days without rows are skipped)
            oldest = conn.execute(
                sql.SQL("select min({col}) from {rel} where {col} < %s").format(rel=relation, col=column_id), (value,)
            ).fetchone()[0]
            if oldest is None:
                break
            day = oldest if column == "date" else oldest.astimezone(dt.UTC).date()
            day_start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
            day_end = day_start + dt.timedelta(days=1)
            with conn.transaction():
                raise_watermark(conn, table, day_end)
                if column == "date":
                    count = conn.execute(
                        sql.SQL("delete from {} where {} = %s").format(relation, column_id), (day,)
                    ).rowcount
                else:
                    count = conn.execute(
                        sql.SQL("delete from {rel} where {col} >= %s and {col} < %s").format(
                            rel=relation, col=column_id
                        ),
                        (day_start, day_end),
                    ).rowcount
            total += count
            if progress:
                progress(f"{schema}.{table}: {day} deleted ({count:,} rows; {total:,} before {bound:%Y-%m-%d} so far)")
        deleted[f"{schema}.{table}"] = total
    return deleted
