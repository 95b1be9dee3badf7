"""Schedules: the hourly and daily jobs, a few minutes after their UTC bucket closes."""

from __future__ import annotations

from dagster import AssetSelection, DefaultScheduleStatus, build_schedule_from_partitioned_job, define_asset_job

from orchestration.defs.assets import daily_dbt_assets, hourly_dbt_assets
from orchestration.defs.partitions import daily_partitions, hourly_partitions

hourly_job = define_asset_job(
    "hourly_usage", selection=AssetSelection.assets(hourly_dbt_assets), partitions_def=hourly_partitions
)
daily_job = define_asset_job(
    "daily_usage", selection=AssetSelection.assets(daily_dbt_assets), partitions_def=daily_partitions
)

# 7 minutes past every hour (cron "7 * * * *"): the hour that just closed, plus the lookback before it.
hourly_schedule = build_schedule_from_partitioned_job(
    hourly_job, minute_of_hour=7, default_status=DefaultScheduleStatus.RUNNING
)
# 00:20 UTC every day (cron "20 0 * * *"): the day that just closed.
daily_schedule = build_schedule_from_partitioned_job(
    daily_job, hour_of_day=0, minute_of_hour=20, default_status=DefaultScheduleStatus.RUNNING
)
