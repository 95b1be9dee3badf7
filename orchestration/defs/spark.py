"""With WATCHLLM_DBT_TARGET=spark the dbt assets build on Spark; this asset then publishes what they
built into the Postgres output tables, where get_dashboard_stats serves it (docs/scaling-out.md)."""

import datetime as dt

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, asset

from orchestration.core import database
from orchestration.defs.partitions import daily_partitions
from orchestration.settings import DBT_POOL
from orchestration.spark import transfer


@asset(
    partitions_def=daily_partitions,
    deps=[AssetKey([name]) for name in transfer.PUBLISHED],
    group_name="spark",
    # the pool of the dbt runs: two publishes, or a publish and a build, never run at once (the
    # build lock in Postgres serialises them anyway; the pool keeps them from waiting on it)
    pool=DBT_POOL,
    description="The Spark-built aggregates of the partition's UTC day and the day before, published into "
    "Postgres (every table's buckets of those days replaced in one transaction; monthly tables by whole "
    "month), then usage_aggregations_local_daily and project_cost_forecast rebuilt on Postgres.",
)
def spark_published_aggregates(context: AssetExecutionContext) -> MaterializeResult:
    day = context.partition_time_window.start.astimezone(dt.UTC).date()
    conn = database.resolve()
    with database.connect(conn, autocommit=True) as pg:
        copied = transfer.publish(pg, day - dt.timedelta(days=1), day + dt.timedelta(days=1), progress=context.log.info)
    transfer.refresh_postgres_only_outputs(conn)
    return MaterializeResult(metadata={f"{table}_rows": rows for table, rows in copied.items()})
