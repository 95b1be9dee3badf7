"""A local Spark session with exactly the settings of profiles.yml's `spark` target (method `session`).

dbt's `session` method runs Spark inside the dbt process with an embedded Derby metastore, which one
process holds at a time: the commands here open their own session between dbt invocations, in
their own process (`watchllm-analytics spark ...`), and stop it before they return.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from orchestration import settings
from orchestration.core.errors import UserError

# The Spark source table: the columns of usage_logs (docs/contract.md, section 2) with uuids as
# strings and money as decimal(38,18), plus the UTC date it is partitioned by (one partition per
# day, so export-logs can replace a day and the models can prune to their window).
USAGE_LOGS_DDL = """
create table if not exists {table} (
    id string,
    project_id string,
    created_at timestamp,
    provider string,
    model string,
    tokens_input bigint,
    tokens_output bigint,
    cost_usd decimal(38, 18),
    potential_cost_usd decimal(38, 18),
    cached boolean,
    latency_ms int,
    created_date date
) using parquet
partitioned by (created_date)
"""


def session_settings() -> dict[str, str]:
    """profiles.yml's server_side_parameters of the spark target, with the same defaults."""
    base = settings.spark_dir()
    return {
        "spark.master": settings.spark_master(),
        "spark.driver.memory": settings.spark_driver_memory(),
        "spark.sql.warehouse.dir": str(base / "warehouse"),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={base / 'metastore'}",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.ansi.enabled": "true",
        "spark.sql.decimalOperations.allowPrecisionLoss": "false",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.sql.mapKeyDedupPolicy": "LAST_WIN",
        "spark.sql.shuffle.partitions": "4",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",  # the commands print their own progress
    }


@contextlib.contextmanager
def session() -> Iterator:
    """A local SparkSession with Hive support (dbt's metastore), run from the repo root, stopped after."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise UserError("pyspark is not installed: run `make setup-spark`") from None
    previous = Path.cwd()
    os.chdir(settings.PROJECT_DIR)  # relative paths in the profile are relative to the repo root
    builder = SparkSession.builder.appName("watchllm-analytics").enableHiveSupport()
    for name, value in session_settings().items():
        builder = builder.config(name, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    try:
        yield spark
    finally:
        spark.stop()
        os.chdir(previous)


def usage_logs_table() -> str:
    return f"{settings.source_schema()}.usage_logs"
