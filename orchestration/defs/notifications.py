"""What reaches people: the usage_alerts sensor and the weekly savings reports (docs/alerts-and-reports.md)."""


import base64
import datetime as dt
import json

from dagster import (
    AssetKey,
    Config,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    OpExecutionContext,
    Output,
    RunRequest,
    SkipReason,
    WeeklyPartitionsDefinition,
    asset,
    build_schedule_from_partitioned_job,
    define_asset_job,
    job,
    multi_asset_sensor,
    op,
)
from psycopg import sql

from orchestration import settings
from orchestration.core import alerts, database, delivery, reports

ALERTED_AFTER = [AssetKey(["usage_aggregations_hourly"]), AssetKey(["usage_aggregations_daily"])]


class AlertOutcome(Config):
    outcome_json: str
    """alerts.to_json of the check the sensor ran."""


@op(description="Records what a usage_alerts sensor tick fired, resolved and delivered, as run metadata.")
def record_usage_alerts(context: OpExecutionContext, config: AlertOutcome) -> Output:
    outcome = json.loads(config.outcome_json)
    fired = outcome["fired"]
    table = "\n".join(f"| #{e['id']} | {e['rule']} | {e['project_id']} | {e['message']} |" for e in fired)
    resolved = "\n".join(f"- #{e['id']} {e['rule']} {e['project_id']} {e['subject']}" for e in outcome["resolved"])
    return Output(
        len(fired),
        metadata={
            "fired": len(fired),
            "resolved": len(outcome["resolved"]),
            "delivered": len(outcome["delivered"]),
            "undelivered": outcome["pending"],
            "fired_alerts": MetadataValue.md("| id | rule | project | message |\n|---|---|---|---|\n" + table)
            if fired
            else MetadataValue.md("none"),
            "resolved_alerts": MetadataValue.md(resolved or "none"),
        },
    )


@job(description="The record of one usage_alerts sensor tick that changed something (the tick did the work).")
def usage_alerts_job() -> None:
    record_usage_alerts()


@multi_asset_sensor(
    monitored_assets=ALERTED_AFTER,
    job=usage_alerts_job,
    name="usage_alerts",
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="After the hourly or daily aggregates materialize: `alerts check` (evaluate, fire, resolve, deliver).",
)
def usage_alerts(context):
    records = {key: record for key, record in context.latest_materialization_records_by_key().items() if record}
    if not records:
        return SkipReason("no new materialization of the hourly or daily aggregates")
    with database.connect(database.resolve(), autocommit=True) as conn:
        result = alerts.check(conn, log=context.log.info)
    context.advance_all_cursors()
    newest = max(record.storage_id for record in records.values())
    if not (result.fired or result.resolved or result.delivered or result.failed):
        return SkipReason(f"checked after event {newest}: nothing fired or resolved; {result.pending} undelivered")
    return RunRequest(
        run_key=f"usage_alerts_after_{newest}",
        run_config={"ops": {"record_usage_alerts": {"config": {"outcome_json": alerts.to_json(result)}}}},
        tags={
            "watchllm/fired": str(len(result.fired)),
            "watchllm/resolved": str(len(result.resolved)),
            "watchllm/delivered": str(len(result.delivered)),
        },
    )


weekly_partitions = WeeklyPartitionsDefinition(start_date=settings.partitions_start(), day_offset=1, timezone="UTC")

ACTIVE_PROJECTS_SQL = """
select daily.project_id, sum(daily.total_requests) as requests
from {daily} as daily
where daily.date between %s and %s
group by daily.project_id
order by requests desc, daily.project_id
"""


def _report_recipients(cur) -> dict:
    exists = cur.execute(
        "select 1 from information_schema.columns where table_schema = %s and table_name = 'project_settings'"
        " and column_name = 'report_email_to'",
        (settings.analytics_schema(),),
    ).fetchone()
    if not exists:
        return {}
    rows = cur.execute(
        sql.SQL("select project_id, report_email_to from {} where report_email_to is not null").format(
            sql.Identifier(settings.analytics_schema(), "project_settings")
        )
    )
    return {project: [a.strip() for a in to.split(",") if a.strip()] for project, to in rows}


@asset(
    partitions_def=weekly_partitions,
    deps=[AssetKey(["usage_aggregations_daily"]), AssetKey(["usage_by_model_daily"])],
    group_name="reports",
    description="Every active project's weekly savings report (HTML and PNGs under WATCHLLM_REPORTS_DIR/weekly/), "
    "emailed to the project's report_email_to when WATCHLLM_SMTP_URL is set.",
)
def weekly_savings_reports(context) -> MaterializeResult:
    monday = context.partition_time_window.start.astimezone(dt.UTC).date()
    period = reports.week_period(monday)
    smtp = settings.smtp_url()
    rendered, sent, failures, preview = 0, 0, [], None
    with database.cursor(database.resolve()) as cur:
        daily = sql.Identifier(settings.analytics_schema(), "usage_aggregations_daily")
        projects = cur.execute(sql.SQL(ACTIVE_PROJECTS_SQL).format(daily=daily), (monday, period.last_day)).fetchall()
        recipients = _report_recipients(cur)
        for project, _ in projects:
            data = reports.gather(cur, project, period, reports.reporting_time_zone(cur, project))
            path = reports.write(data, settings.reports_dir() / "weekly" / period.label / str(project))
            rendered += 1
            if preview is None:
                preview = (data, path)  # the busiest project
            if recipients.get(project):
                if not smtp:
                    failures.append(f"{project}: WATCHLLM_SMTP_URL is not set")
                    continue
                try:
                    delivery.send_email(smtp, reports.email(data, recipients[project]))
                    sent += 1
                except delivery.DeliveryError as exc:
                    failures.append(f"{project}: {exc}")
                    context.log.warning(f"report of {project} not sent: {exc}")
    metadata = {
        "week": period.label,
        "projects_rendered": rendered,
        "emails_sent": sent,
        "send_failures": MetadataValue.md("\n".join(f"- {f}" for f in failures) or "none"),
        "directory": MetadataValue.path(str(settings.reports_dir() / "weekly" / period.label)),
    }
    if preview:
        data, path = preview
        chart = base64.b64encode((path.parent / "cost_vs_potential.png").read_bytes()).decode()
        metadata["preview"] = MetadataValue.md(
            f"**{data.project_id}** ({data.time_zone}): {data.totals.requests:,} requests, "
            f"cost {reports.money(data.totals.cost)}, saved {reports.money(data.totals.savings)}\n\n"
            f"![cost against potential](data:image/png;base64,{chart})"
        )
        metadata["preview_report"] = MetadataValue.path(str(path))
    return MaterializeResult(metadata=metadata)


weekly_reports_job = define_asset_job(
    "weekly_reports", selection=[weekly_savings_reports], partitions_def=weekly_partitions
)
# Monday 06:00 UTC (cron "0 6 * * 1"): the ISO week that just ended.
weekly_reports_schedule = build_schedule_from_partitioned_job(
    weekly_reports_job, hour_of_day=6, day_of_week=1, default_status=DefaultScheduleStatus.RUNNING
)
