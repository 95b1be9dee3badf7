"""Jobs beside the dbt assets: the deep check over all of history, and the retention policy."""

from collections import Counter

from dagster import (
    DefaultScheduleStatus,
    Failure,
    MetadataValue,
    OpExecutionContext,
    Output,
    ScheduleDefinition,
    job,
    op,
)
from dagster_dbt import DbtCliResource

from orchestration import settings
from orchestration.core import database, retention
from orchestration.defs.resources import dbt_project, use_resolved_database


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


@op(description="Every test tagged deep_check over all of history (the hourly runs read only their window).")
def run_deep_check(context: OpExecutionContext, dbt: DbtCliResource) -> Output:
    use_resolved_database()
    invocation = dbt.cli(list(settings.DEEP_CHECK_DBT_ARGS), manifest=dbt_project.manifest_path, raise_on_error=False)
    invocation.wait()
    results = invocation.get_artifact("run_results.json")["results"]
    statuses = Counter(result["status"] for result in results)
    broken = sorted(result["unique_id"].split(".")[2] for result in results if result["status"] in ("fail", "error"))
    warned = sorted(result["unique_id"].split(".")[2] for result in results if result["status"] == "warn")
    metadata = {
        "tests": len(results),
        **{status: count for status, count in sorted(statuses.items())},
        "failed": MetadataValue.md("\n".join(f"- {name}" for name in broken) or "none"),
        "warned": MetadataValue.md("\n".join(f"- {name}" for name in warned) or "none"),
    }
    if broken:
        raise Failure(description=f"deep check: {len(broken)} test(s) failed over all of history", metadata=metadata)
    context.log.info(f"deep check passed: {len(results)} tests, warnings: {', '.join(warned) or 'none'}")
    return Output(len(results), metadata=metadata)


@job(description="Deep check: the deep_check tests over all of history (dbt test --select tag:deep_check).")
def deep_check_job() -> None:
    run_deep_check()


# 03:10 UTC daily, before the retention job's slot.
deep_check_schedule = ScheduleDefinition(
    job=deep_check_job,
    cron_schedule="10 3 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
