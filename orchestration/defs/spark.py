"""With WATCHLLM_DBT_TARGET=spark the dbt assets build on Spark; this asset then publishes what they
built into the Postgres output tables, where get_dashboard_stats serves it (docs/scaling-out.md)."""

import datetime as dt

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, asset

from orchestration.core import database
from orchestration.defs.partitions import daily_partitions
from orchestration.spark import transfer


@asset(
    partitions_def=daily_partitions,
    deps=[AssetKey([name]) for name in transfer.PUBLISHED],
    group_name="spark",
    description="The Spark-built aggregates of the partition's UTC day and the day before, published into "
    "Postgres (whole buckets replaced, one transaction per table; monthly tables by whole month).",
)
def spark_published_aggregates(context: AssetExecutionContext) -> MaterializeResult:
    day = context.partition_time_window.start.astimezone(dt.UTC).date()
    with database.connect(database.resolve(), autocommit=True) as pg:
        copied = transfer.publish(pg, day - dt.timedelta(days=1), day + dt.timedelta(days=1), progress=context.log.info)
    return MaterializeResult(metadata={f"{table}_rows": rows for table, rows in copied.items()})
