"""What reaches people: the alert check after each build and the weekly savings reports (docs/alerts-and-reports.md)."""

import base64
import datetime as dt

from dagster import (
    AssetKey,
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Failure,
    MaterializeResult,
    MetadataValue,
    WeeklyPartitionsDefinition,
    asset,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

from orchestration import settings
from orchestration.core import alerts, database, labels, reports
from orchestration.core.formatting import money

ALERTED_AFTER = [AssetKey(["usage_aggregations_hourly"]), AssetKey(["usage_aggregations_daily"])]

# After any new hourly or daily aggregates, once (a run already in flight is not joined by another).
AFTER_NEW_AGGREGATES = (AutomationCondition.any_deps_updated() & ~AutomationCondition.in_progress()).with_label(
    "after new hourly or daily aggregates"
)


def _alerts_table(events: list[dict]) -> MetadataValue:
    if not events:
        return MetadataValue.md("none")
    rows = "\n".join(
        f"| #{e['id']} | {e['rule']} | {e['project_id']} | {labels.markdown(e['message'])} |" for e in events
    )
    return MetadataValue.md("| id | rule | project | message |\n|---|---|---|---|\n" + rows)


@asset(
    key=AssetKey(["alert_events"]),
    deps=ALERTED_AFTER,
    group_name="people",
    automation_condition=AFTER_NEW_AGGREGATES,
    description="`alerts check` (docs/alerts-and-reports.md): every project judged, fired, resolved and delivered on "
    "its own; the firings in analytics.alert_events, each delivery attempt in analytics.alert_delivery_attempts.",
)
def alert_events(context) -> MaterializeResult:
    with database.connect(database.resolve(), autocommit=True) as conn:
        result = alerts.check(conn, log=context.log.info)
    failures = [
        *(f"{project} could not be judged for {rule}: {error}" for project, rule, error in result.evaluation.failures),
        *(f"{f['project_id']}: delivery of #{f['ids']} failed: {f['errors']}" for f in result.failed),
    ]
    resolved = "\n".join(
        f"- #{e['id']} {e['rule']} {e['project_id']} {labels.markdown(e['subject'])}" for e in result.resolved
    )
    return MaterializeResult(
        metadata={
            "fired": len(result.fired),
            "resolved": len(result.resolved),
            "delivered": len(result.delivered),
            "undelivered": result.pending,
            "messages_sent": result.messages_sent,
            "smtp_sessions": result.smtp_sessions,
            "fired_alerts": _alerts_table(result.fired),
            "resolved_alerts": MetadataValue.md(resolved or "none"),
            # each project's failure is recorded here (and on its firings); the others were handled
            "failures": MetadataValue.md("\n".join(f"- {labels.markdown(f)}" for f in failures) or "none"),
        }
    )


usage_alerts_job = define_asset_job("usage_alerts_job", selection=[alert_events])

# The check runs in a run of its own, requested by declarative automation after each build.
usage_alerts = AutomationConditionSensorDefinition(
    "usage_alerts",
    target=AssetSelection.assets(alert_events),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="After the hourly or daily aggregates materialize: an `alert_events` run (`alerts check`).",
)


weekly_partitions = WeeklyPartitionsDefinition(start_date=settings.partitions_start(), day_offset=1, timezone="UTC")


@asset(
    partitions_def=weekly_partitions,
    deps=[
        AssetKey(["usage_aggregations_daily"]),
        AssetKey(["usage_by_model_daily"]),
        AssetKey(["usage_by_dimension_daily"]),
    ],
    group_name="reports",
    description="Every active project's weekly savings report (HTML and PNGs under WATCHLLM_REPORTS_DIR/weekly/), "
    "emailed to the project's report_email_to when WATCHLLM_SMTP_URL is set. Each project on its own; a retry "
    "sends only the reports not yet sent (analytics.report_deliveries).",
)
def weekly_savings_reports(context) -> MaterializeResult:
    monday = context.partition_time_window.start.astimezone(dt.UTC).date()
    with database.cursor(database.resolve()) as cur:
        outcome = reports.weekly_reports(cur, reports.week_period(monday), log=context.log.warning)
    metadata = {
        "week": outcome.period.label,
        "projects_rendered": outcome.rendered,
        "emails_sent": outcome.sent,
        "emails_sent_before": outcome.already_sent,
        "failures": MetadataValue.md("\n".join(f"- {labels.markdown(f)}" for f in outcome.failures) or "none"),
        "directory": MetadataValue.path(str(outcome.directory)),
    }
    if outcome.preview:
        data, path = outcome.preview
        chart = base64.b64encode((path.parent / "cost_vs_potential.png").read_bytes()).decode()
        metadata["preview"] = MetadataValue.md(
            f"**{data.project_id}** ({labels.markdown(data.time_zone)}): {data.totals.requests:,} requests, "
            f"cost {money(data.totals.cost)}, saved {money(data.totals.savings)}\n\n"
            + "".join(
                f"{reports.BREAKDOWN_TITLES[dimension]}: "
                + ", ".join(f"{labels.markdown(r['value'])} {money(r['cost'])}" for r in rows[:3])
                + "\n\n"
                for dimension, rows in data.breakdowns.items()
            )
            + f"![cost against potential](data:image/png;base64,{chart})"
        )
        metadata["preview_report"] = MetadataValue.path(str(path))
    if outcome.failures:
        # every other project was rendered and sent; a retry of this run sends only what is missing
        raise Failure(
            description=f"{len(outcome.failures)} project(s) failed: " + "; ".join(outcome.failures[:3]),
            metadata=metadata,
        )
    return MaterializeResult(metadata=metadata)


weekly_reports_job = define_asset_job(
    "weekly_reports", selection=[weekly_savings_reports], partitions_def=weekly_partitions
)
# Monday 06:00 UTC (cron "0 6 * * 1"): the ISO week that just ended.
weekly_reports_schedule = build_schedule_from_partitioned_job(
    weekly_reports_job, hour_of_day=6, day_of_week=1, default_status=DefaultScheduleStatus.RUNNING
)
