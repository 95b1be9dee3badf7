"""Time partitions (UTC) of the aggregates, and the dbt vars a partition range becomes."""

from __future__ import annotations

import datetime as dt
import json

from dagster import DailyPartitionsDefinition, HourlyPartitionsDefinition, TimeWindow

from orchestration import settings

PARTITIONS_START = settings.partitions_start()

hourly_partitions = HourlyPartitionsDefinition(start_date=f"{PARTITIONS_START}-00:00", timezone="UTC")
daily_partitions = DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone="UTC")


def rebuild_vars(window: TimeWindow, lookback_hours: int = 0) -> str:
    """The models' range-rebuild vars for a partition window (UTC), widened back by `lookback_hours`."""
    start = window.start.astimezone(dt.UTC) - dt.timedelta(hours=lookback_hours)
    end = window.end.astimezone(dt.UTC)
    return json.dumps({"start": start.strftime("%Y-%m-%dT%H:%M"), "end": end.strftime("%Y-%m-%dT%H:%M")})
