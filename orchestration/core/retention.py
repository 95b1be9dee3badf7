"""Retention: delete old raw logs and aggregates in small batches, by whole UTC days.

Defaults follow the design guide: hourly aggregates 90 days, daily aggregates 365 days, raw logs
kept (the proxy owns them; set a number to delete them too). The monthly savings table is kept.
Aggregates never depend on raw rows still existing: builds and backfills skip buckets whose raw
rows are gone (see README "Guarantees").
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
            (analytics, "usage_aggregations_daily", "date", self.daily_days),
            (analytics, "usage_by_model_daily", "date", self.daily_days),
            (analytics, "usage_aggregations_local_daily", "date", self.daily_days),
        ]


def cutoff(days: int, today: dt.date) -> dt.datetime:
    """UTC midnight `days` days before today: rows before it go."""
    return dt.datetime.combine(today - dt.timedelta(days=days), dt.time(), tzinfo=dt.UTC)


def apply(
    conn, policy: Policy, batch_size: int = 10_000, dry_run: bool = False, today: dt.date | None = None, progress=None
) -> dict[str, int]:
    """Delete what the policy no longer keeps, `batch_size` rows per transaction; rows deleted per table."""
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    today = today or dt.datetime.now(dt.UTC).date()
    deleted: dict[str, int] = {}
    for schema, table, column, days in policy.targets():
        if days is FOREVER:
            continue
        relation = sql.Identifier(schema, table)
        bound = cutoff(days, today)
        value = bound.date() if column == "date" else bound
        if dry_run:
            count = conn.execute(
                sql.SQL("select count(*) from {} where {} < %s").format(relation, sql.Identifier(column)), (value,)
            ).fetchone()[0]
            deleted[f"{schema}.{table}"] = count
            continue
        total = 0
        while True:
            with conn.transaction():
                count = conn.execute(
                    sql.SQL(
                        "delete from {rel} where ctid = any(array(select ctid from {rel} where {col} < %s limit %s))"
                    ).format(rel=relation, col=sql.Identifier(column)),
                    (value, batch_size),
                ).rowcount
            total += count
            if progress:
                progress(f"{schema}.{table}: {total:,} rows before {bound:%Y-%m-%d} deleted")
            if count < batch_size:
                break
        deleted[f"{schema}.{table}"] = total
    return deleted
