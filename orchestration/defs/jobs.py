"""The retention job: the retention policy (orchestration/core/retention.py) as a Dagster job and schedule."""

from dagster import DefaultScheduleStatus, OpExecutionContext, ScheduleDefinition, job, op

from orchestration.core import database, retention


@op(description="Delete raw logs and aggregates older than the WATCHLLM_RETAIN_* policy, in batches.")
def apply_retention_policy(context: OpExecutionContext) -> None:
    policy = retention.Policy.from_env()
    with database.connect(database.resolve(), autocommit=True) as conn:
        deleted = retention.apply(conn, policy, progress=context.log.debug)
    for table, count in deleted.items():
        context.log.info(f"{table}: deleted {count:,} rows")


@job(description="Retention: hourly aggregates 90 days, daily 365, raw logs kept unless configured.")
def retention_job() -> None:
    apply_retention_policy()


# 03:40 UTC daily; stopped until an operator turns it on (it deletes data).
retention_schedule = ScheduleDefinition(
    job=retention_job,
    cron_schedule="40 3 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
)
