"""The Dagster code location: everything Dagster knows about watchllm-analytics, assembled here."""

from __future__ import annotations

from dagster import AssetSelection, AutomationConditionSensorDefinition, DefaultSensorStatus, Definitions

from orchestration import settings
from orchestration.defs.assets import daily_dbt_assets, hourly_dbt_assets, unpartitioned_dbt_assets, usage_logs
from orchestration.defs.checks import (
    cache_hit_rate_drop,
    daily_matches_raw_rows,
    forecast_month_to_date_matches_daily,
    keys_and_end_users_add_up_to_daily,
)
from orchestration.defs.jobs import deep_check_job, deep_check_schedule, retention_job, retention_schedule
from orchestration.defs.notifications import (
    alert_events,
    usage_alerts,
    usage_alerts_job,
    weekly_reports_job,
    weekly_reports_schedule,
    weekly_savings_reports,
)
from orchestration.defs.resources import dbt_resource
from orchestration.defs.schedules import daily_job, daily_schedule, hourly_job, hourly_schedule


def _spark_assets() -> list:
    if settings.dbt_target() != "spark":
        return []
    from orchestration.defs.spark import spark_published_aggregates

    return [spark_published_aggregates]


# Observes proxy/usage_logs every 15 minutes (its automation condition), which its freshness policy judges.
usage_logs_observation = AutomationConditionSensorDefinition(
    "usage_logs_observation",
    target=AssetSelection.assets(usage_logs),
    default_status=DefaultSensorStatus.RUNNING,
    description="Observes the proxy's usage_logs every 15 minutes: the newest row, which its freshness policy judges.",
)

defs = Definitions(
    assets=[
        usage_logs,
        unpartitioned_dbt_assets,
        hourly_dbt_assets,
        daily_dbt_assets,
        alert_events,
        weekly_savings_reports,
        *_spark_assets(),
    ],
    asset_checks=[
        cache_hit_rate_drop,
        daily_matches_raw_rows,
        forecast_month_to_date_matches_daily,
        keys_and_end_users_add_up_to_daily,
    ],
    jobs=[hourly_job, daily_job, deep_check_job, retention_job, usage_alerts_job, weekly_reports_job],
    schedules=[hourly_schedule, daily_schedule, deep_check_schedule, retention_schedule, weekly_reports_schedule],
    sensors=[usage_alerts, usage_logs_observation],
    resources={"dbt": dbt_resource()},
)
