"""Rows between Postgres and Spark: `spark export-logs` (usage_logs into Spark, a UTC day at a time,
resumable, noticing edits) and `spark publish` (the Spark-built aggregates into the Postgres output
tables, every table in one transaction).

Both reach Spark through `connection.connect()`, the same profile and connection dbt uses. With a
local session the rows pass through this process in bounded Arrow slices; with a Thrift server or
Databricks they move between the cluster and Postgres over JDBC and never reach this process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import io
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal

import psycopg
from psycopg import sql

from orchestration import settings
from orchestration.core import retention
from orchestration.core.errors import UserError
from orchestration.spark.connection import SparkSQL, as_date, as_decimal, connect, literal
from orchestration.spark.session import USAGE_LOGS_DDL, usage_logs_table

LOG_COLUMNS = (
    "id",
    "project_id",
    "created_at",
    "provider",
    "model",
    "tokens_input",
    "tokens_output",
    "cost_usd",
    "potential_cost_usd",
    "cached",
    "latency_ms",
)
# The optional columns of section 14, exported when the Postgres usage_logs has them, with their Spark types.
CLASS_COLUMNS = {
    "tokens_cache_read": "bigint",
    "tokens_cache_write": "bigint",
    "tokens_cache_write_1h": "bigint",
    "tokens_reasoning": "bigint",
    "service_tier": "string",
    # section 15: who spent it (tags travel as JSON text and become an array on Spark)
    "api_key_id": "string",
    "end_user": "string",
    "tags": "array<string>",
    "status_code": "int",
}
MONEY_COLUMNS = ("cost_usd", "potential_cost_usd")
SPARK_TYPES = {
    "id": "string",
    "project_id": "string",
    "created_at": "timestamp",
    "provider": "string",
    "model": "string",
    "tokens_input": "bigint",
    "tokens_output": "bigint",
    "cost_usd": "decimal(38,18)",
    "potential_cost_usd": "decimal(38,18)",
    "cached": "boolean",
    "latency_ms": "int",
    **CLASS_COLUMNS,
}
# What a day's export is compared by on both sides: a day is skipped only when all of these match.
SUMMED_COLUMNS = ("tokens_input", "tokens_output", *MONEY_COLUMNS)
# decimal(38,18): at most 20 digits before the point and 18 after it
SPARK_MONEY_LIMIT = Decimal(10) ** 20
SPARK_MONEY_STEP = Decimal("1e-18")

EXPORT_SLICE_ROWS = 100_000  # rows a local session holds at once (an Arrow slice, one file per slice)
JDBC_FETCH_ROWS = 10_000  # rows a cluster's JDBC reader fetches per round trip

# The outputs `publish` copies, with the bucket column each one's rows are replaced by (whole
# buckets, over the range), in the order their locks are taken.
PUBLISHED = {
    "int_usage_hourly_by_model": "hour_start",
    "usage_aggregations_hourly": "hour_start",
    "usage_by_model_daily": "date",
    "usage_aggregations_daily": "date",
    "int_usage_daily_by_tier_and_band": "date",
    "project_savings_monthly": "month",
    "model_cost_counterfactual_monthly": "month",
    "int_usage_hourly_by_dimension": "hour_start",
    "usage_by_dimension_daily": "date",
}
# Each one's partition column on Spark (macros/portability/portable.sql, aggregate_partition_by).
PARTITION_COLUMNS = {
    "int_usage_hourly_by_model": "partition_date",
    "usage_aggregations_hourly": "partition_date",
    "usage_by_model_daily": "date",
    "usage_aggregations_daily": "date",
    "int_usage_daily_by_tier_and_band": "date",
    "project_savings_monthly": "month",
    "model_cost_counterfactual_monthly": "month",
    "int_usage_hourly_by_dimension": "partition_date",
    "usage_by_dimension_daily": "date",
}
# Built on Postgres only, from the published tables: brought up to date after every publish.
POSTGRES_ONLY_OUTPUTS = ("usage_aggregations_local_daily", "project_cost_forecast")


@dataclass
class DayExport:
    day: dt.date | None
    rows: int
    action: str  # "exported", "already there" or "touched by retention" (never overwritten with part of a day)


# ---------------------------------------------------------------------------------------------
# Postgres as a cluster reaches it
# ---------------------------------------------------------------------------------------------


def jdbc_options(pg, dbtable: str) -> str:
    """The OPTIONS of a Spark JDBC relation on `dbtable` (a table, or a query in parentheses)."""
    url = settings.spark_postgres_jdbc_url()
    if url is None:
        host = pg.info.host
        if not host or host.startswith("/"):
            raise UserError(
                "a Spark cluster reaches Postgres over TCP, and this Postgres is a Unix socket: set "
                "WATCHLLM_SPARK_POSTGRES_URL=jdbc:postgresql://HOST:PORT/DATABASE as the cluster reaches it"
            )
        url = f"jdbc:postgresql://{host}:{pg.info.port}/{pg.info.dbname}"
    options = {
        "url": url,
        "driver": "org.postgresql.Driver",
        "dbtable": dbtable,
        "user": settings.spark_postgres_user() or pg.info.user,
        "fetchsize": str(JDBC_FETCH_ROWS),
        "batchsize": str(JDBC_FETCH_ROWS),
    }
    password = settings.spark_postgres_password() or pg.info.password
    if password:
        options["password"] = password
    return ", ".join(f"{name} {literal(value)}" for name, value in options.items())


def _columns(spark: SparkSQL, table: str) -> list[tuple[str, str]]:
    """(name, type) of a Spark table's columns in order, partition columns last."""
    columns = []
    for name, data_type, *_ in spark.sql(f"describe table {table}"):
        if not name or name.startswith("#"):
            break
        columns.append((name, data_type))
    return columns


# ---------------------------------------------------------------------------------------------
# export-logs
# ---------------------------------------------------------------------------------------------


def _check_money_fits(pg, logs, where, params) -> None:
    """A UserError naming the first row of the slice whose money decimal(38,18) cannot hold exactly
    (checked in Postgres, on the exact numeric values: nothing is ever rounded)."""
    checks = sql.SQL(" or ").join(
        sql.SQL("abs({c}) >= 1e20 or {c} <> round({c}, 18)").format(c=sql.Identifier(c)) for c in MONEY_COLUMNS
    )
    query = sql.SQL("select id, {money} from {logs} where ({where}) and ({checks}) limit 1").format(
        money=sql.SQL(", ").join(map(sql.Identifier, MONEY_COLUMNS)), logs=logs, where=where, checks=checks
    )
    bad = pg.execute(query, params).fetchone()
    if bad:
        row_id, *values = bad
        column, value = next((c, v) for c, v in zip(MONEY_COLUMNS, values, strict=True) if not _fits(v))
        raise UserError(
            f"usage_logs row {row_id}: {column} = {value} does not fit Spark's decimal(38,18) "
            "(at most 20 digits before the point and 18 after): nothing of that day was exported; "
            "correct the row, or keep that history on Postgres"
        )


def _fits(value: Decimal | None) -> bool:
    if value is None:
        return True
    with decimal.localcontext() as context:
        context.prec = 80
        return value.is_finite() and abs(value) < SPARK_MONEY_LIMIT and value.quantize(SPARK_MONEY_STEP) == value


def _class_columns_in(pg, logs) -> list[str]:
    """The optional columns of sections 14 and 15 the Postgres usage_logs has."""
    present = {
        name
        for (name,) in pg.execute(
            "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped",
            (logs.as_string(pg),),
        )
    }
    return [column for column in CLASS_COLUMNS if column in present]


def _summed(class_columns: list[str]) -> list[str]:
    return [*SUMMED_COLUMNS, *(c for c in class_columns if CLASS_COLUMNS[c] == "bigint")]


def _postgres_days(pg, logs, bounds, params, summed: list[str]) -> dict:
    """Per UTC day of usage_logs in the range: (rows, the sum of each summed column)."""
    sums = sql.SQL("").join(sql.SQL(", sum({})").format(sql.Identifier(c)) for c in summed)
    query = sql.SQL(
        "select (created_at at time zone 'UTC')::date, count(*){sums} from {logs} where true{bounds} group by 1"
    ).format(sums=sums, logs=logs, bounds=bounds)
    return {row[0]: tuple(as_decimal(v) for v in row[1:]) for row in pg.execute(query, params)}


def _spark_days(spark: SparkSQL, table: str, summed: list[str], start, end) -> dict:
    """The same per day on Spark, reading only the range's partitions (an export of the new day
    must not read all of history)."""
    sums = "".join(f", sum({c})" for c in summed)
    bounds = "".join(
        [f" and created_date >= date'{start}'" if start else "", f" and created_date < date'{end}'" if end else ""]
    )
    rows = spark.sql(f"select created_date, count(*){sums} from {table} where true{bounds} group by created_date")
    return {as_date(row[0]): tuple(as_decimal(v) for v in row[1:]) for row in rows}


def _export_select(log_day, class_columns: list[str]) -> tuple[sql.Composed, sql.SQL, list]:
    """The Postgres query of one UTC day's rows for Spark: uuids as text, the instant as epoch
    microseconds and the day as text (no time zone or JVM default can shift them), money as
    numeric(38,18) (exact: checked to fit before), and the UTC day the row is partitioned by."""
    columns = []
    for column in (*LOG_COLUMNS, *class_columns):
        if column == "created_at":
            columns.append(sql.SQL("(extract(epoch from created_at) * 1000000)::bigint as created_at_us"))
        elif column in ("id", "project_id"):
            columns.append(sql.SQL("{c}::text as {c}").format(c=sql.Identifier(column)))
        elif column in MONEY_COLUMNS:
            columns.append(sql.SQL("{c}::numeric(38, 18) as {c}").format(c=sql.Identifier(column)))
        elif column == "tags":  # a text array or JSON, as JSON text (an array's elements as strings)
            columns.append(sql.SQL("to_json(tags)::text as tags"))
        elif column in ("api_key_id", "end_user"):
            columns.append(sql.SQL("{c}::text as {c}").format(c=sql.Identifier(column)))
        else:
            columns.append(sql.Identifier(column))
    columns.append(sql.SQL("((created_at at time zone 'UTC')::date)::text as created_day"))
    if log_day is None:
        return sql.SQL(", ").join(columns), sql.SQL("created_at is null"), []
    day_params = [
        dt.datetime.combine(log_day, dt.time(), dt.UTC),
        dt.datetime.combine(log_day + dt.timedelta(days=1), dt.time(), dt.UTC),
    ]
    return sql.SQL(", ").join(columns), sql.SQL("created_at >= %s and created_at < %s"), day_params


def _spark_expression(name: str, spark_type: str, have: set[str]) -> str:
    """How the Spark table's column is made from the exported row's columns."""
    if name == "created_at":
        return "timestamp_micros(created_at_us) as created_at"
    if name == "created_date":
        return "cast(created_day as date) as created_date"
    if name == "tags" and name in have:
        return "from_json(tags, 'array<string>') as tags"
    if name in have:
        return f"cast(`{name}` as {spark_type}) as `{name}`"
    return f"cast(null as {spark_type}) as `{name}`"  # a class column Postgres lacks


def _export_day_over_jdbc(pg, spark, table, logs, log_day, class_columns, spark_columns) -> None:
    """One day into its Spark partition, read by the cluster straight from Postgres."""
    select, where, params = _export_select(log_day, class_columns)
    bounds = retention.watermarks_relation()
    if log_day is not None and pg.execute("select to_regclass(%s) is not null", (bounds.as_string(pg),)).fetchone()[0]:
        # The cluster reads in a snapshot of its own. Retention deletes a day and moves the watermark
        # in one transaction, so this sees the day whole, or no rows at all once retention has
        # touched it: then nothing is overwritten and Spark keeps its copy.
        where = sql.SQL(
            "{} and not exists (select 1 from {} where table_name = 'usage_logs' and retained_from >= %s)"
        ).format(where, bounds)
        params = [*params, params[1]]
    query = sql.SQL("(select {} from {} where {}) as day_rows").format(select, logs, where)
    dbtable = psycopg.ClientCursor(pg).mogrify(query, params)
    view = f"watchllm_export_{uuid.uuid4().hex[:12]}"
    have = {*LOG_COLUMNS, *class_columns}
    spark.sql(f"create temporary view {view} using jdbc options ({jdbc_options(pg, dbtable)})")
    try:
        expressions = ", ".join(_spark_expression(name, kind, have) for name, kind in spark_columns)
        spark.sql(f"insert overwrite table {table} partition (created_date) select {expressions} from {view}")
    finally:
        spark.sql(f"drop view if exists {view}")


class _CopyReader(io.RawIOBase):
    """A file over the chunks of a Postgres COPY TO STDOUT, for Arrow's streaming CSV reader."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = bytes(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _export_day_through_session(pg, spark, table, logs, log_day, class_columns, spark_columns) -> None:
    """One day into its Spark partition through this process (the local session's driver): Postgres'
    CSV COPY (text: every numeric arrives as written) read by Arrow a block at a time, written in
    slices of EXPORT_SLICE_ROWS, one file each. The first slice overwrites the day's partition
    (dynamic partition overwrite), the others append; a run that dies in between leaves sums that
    differ, so the next run exports the day again."""
    import pyarrow as pa
    from pyarrow import csv as pa_csv

    select, where, params = _export_select(log_day, class_columns)
    money = pa.decimal128(38, 18)
    arrow_types = {
        "string": pa.string(),
        "bigint": pa.int64(),
        "int": pa.int32(),
        "boolean": pa.bool_(),
        "array<string>": pa.string(),  # JSON text in the CSV; a list below
    }
    types = {
        ("created_at_us" if c == "created_at" else c): (
            pa.int64() if c == "created_at" else money if c in MONEY_COLUMNS else arrow_types[SPARK_TYPES[c]]
        )
        for c in (*LOG_COLUMNS, *class_columns)
    }
    types["created_day"] = pa.string()
    copy_sql = sql.SQL("copy (select {} from {} where {}) to stdout with (format csv)").format(select, logs, where)
    schema = spark.session.table(table).schema
    have = {*LOG_COLUMNS, *class_columns}

    def to_spark_columns(batch: pa.Table) -> pa.Table:
        arrays = []
        for field in schema:
            if field.name == "created_at":
                arrays.append(batch.column("created_at_us").cast(pa.timestamp("us", tz="UTC")))
            elif field.name == "created_date":
                arrays.append(pa.array([log_day] * batch.num_rows, type=pa.date32()))
            elif field.name == "tags":
                texts = batch.column("tags").to_pylist() if "tags" in have else [None] * batch.num_rows
                arrays.append(pa.array([_tag_list(text) for text in texts], type=pa.list_(pa.string())))
            elif field.name in have:
                arrays.append(batch.column(field.name))
            else:
                arrays.append(pa.nulls(batch.num_rows, type=arrow_types[CLASS_COLUMNS[field.name]]))
        return pa.Table.from_arrays(arrays, names=[field.name for field in schema])

    written = 0
    pending: list = []
    pending_rows = 0

    def write(batches: list) -> None:
        nonlocal written
        piece = to_spark_columns(pa.Table.from_batches(batches)) if batches else to_spark_columns(empty)
        frame = spark.session.createDataFrame(piece, schema).coalesce(1)
        frame.write.insertInto(table, overwrite=written == 0)
        written += 1

    with pg.cursor() as cur, cur.copy(copy_sql, params) as copy:
        reader = pa_csv.open_csv(
            io.BufferedReader(_CopyReader(iter(copy)), buffer_size=1 << 20),
            read_options=pa_csv.ReadOptions(column_names=list(types), block_size=4 << 20),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),  # messy labels may hold line breaks
            convert_options=pa_csv.ConvertOptions(
                column_types=types,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,  # NULL is an empty field, '' is ""
                true_values=["t"],
                false_values=["f"],
            ),
        )
        empty = pa.Table.from_batches([], schema=reader.schema)
        for batch in reader:
            pending.append(batch)
            pending_rows += batch.num_rows
            if pending_rows >= EXPORT_SLICE_ROWS:
                write(pending)
                pending, pending_rows = [], 0
    if pending or written == 0:
        write(pending)


def _tag_list(text: str | None) -> list[str] | None:
    """A row's tags from their JSON text, as from_json(tags, 'array<string>') reads them on a cluster."""
    if text is None or not text.startswith("["):
        return None
    return [value if isinstance(value, str) else json.dumps(value) for value in json.loads(text) if value is not None]


def export_logs(
    pg, start: dt.date | None, end: dt.date | None, force: bool = False, progress: Callable[[str], None] = print
) -> list[DayExport]:
    """Copy usage_logs into the Spark table, replacing each UTC day whose row count or money and
    token sums differ from Spark's (resumable; `force`: every day of the range)."""
    logs = sql.Identifier(settings.source_schema(), "usage_logs")
    bounds = sql.SQL("")
    params: list = []
    if start:
        bounds += sql.SQL(" and created_at >= %s")
        params.append(dt.datetime.combine(start, dt.time(), dt.UTC))
    if end:
        bounds += sql.SQL(" and created_at < %s")
        params.append(dt.datetime.combine(end, dt.time(), dt.UTC))
    class_columns = _class_columns_in(pg, logs)
    summed = _summed(class_columns)
    days = _postgres_days(pg, logs, bounds, params, summed)
    if start or end:
        days.pop(None, None)  # rows without created_at belong to no range
    ordered = sorted(days, key=lambda d: (d is not None, d))
    done: list[DayExport] = []
    with connect() as spark:
        table = usage_logs_table()
        spark.sql(f"create database if not exists {settings.source_schema()}")
        spark.sql(USAGE_LOGS_DDL.format(table=table))
        have = {name for name, _ in _columns(spark, table)}
        missing = [c for c in class_columns if c not in have]
        if missing:  # the days already there lack the new columns' values: every day goes again
            spark.sql(f"alter table {table} add columns ({', '.join(f'{c} {CLASS_COLUMNS[c]}' for c in missing)})")
        spark_columns = _columns(spark, table)
        there = {} if (missing or force) else _spark_days(spark, table, summed, start, end)
        export_day = _export_day_through_session if spark.is_local else _export_day_over_jdbc
        for number, log_day in enumerate(ordered, start=1):
            count = int(days[log_day][0])
            if there.get(log_day) == days[log_day]:
                done.append(DayExport(log_day, count, "already there"))
                continue
            _, where, day_params = _export_select(log_day, class_columns)
            with pg.transaction():
                # one snapshot for the watermark, the check and (locally) the rows: retention deletes
                # a day and moves the watermark in one transaction, so this sees the day whole, or
                # gone and marked
                pg.execute("set transaction isolation level repeatable read")
                touched = retention.watermark(pg, "usage_logs")
                if log_day is not None and touched is not None and log_day < touched.astimezone(dt.UTC).date():
                    done.append(DayExport(log_day, count, "touched by retention"))
                    progress(f"[{number}/{len(ordered)}] {log_day}: touched by retention, Spark keeps its copy")
                    continue
                _check_money_fits(pg, logs, where, day_params)
                export_day(pg, spark, table, logs, log_day, class_columns, spark_columns)
            done.append(DayExport(log_day, count, "exported"))
            progress(f"[{number}/{len(ordered)}] {log_day or 'no created_at'}: {count:,} rows exported")
    return done


# ---------------------------------------------------------------------------------------------
# publish
# ---------------------------------------------------------------------------------------------


def staging_schema() -> str:
    """Where publish stages the Spark rows in Postgres before its one transaction."""
    return f"{settings.analytics_schema()}_publish"


def _run_lock_key(run: str) -> str:
    return f"watchllm_analytics.publish.{run}"


def _drop_abandoned_staging(pg) -> None:
    """Drop the staging tables of publishes that died (their run's session lock is free)."""
    rows = pg.execute(
        "select tablename from pg_tables where schemaname = %s and tablename like %s", (staging_schema(), "%\\_\\_%")
    ).fetchall()
    for run in sorted({name.rsplit("__", 1)[1] for (name,) in rows}):
        if pg.execute("select pg_try_advisory_lock(hashtext(%s))", (_run_lock_key(run),)).fetchone()[0]:
            for (name,) in rows:
                if name.endswith(f"__{run}"):
                    pg.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(staging_schema(), name)))
            pg.execute("select pg_advisory_unlock(hashtext(%s))", (_run_lock_key(run),))


def _bounds(spark: SparkSQL, schema: str, start, end) -> tuple[dt.date, dt.date]:
    """[first, end) of the days publish replaces: the range given, else from the first to the last
    day the Spark hourly pass has (its partitions, read from the metastore)."""
    if start and end:
        return start, end
    days = []
    for (spec,) in spark.sql(f"show partitions {schema}.int_usage_hourly_by_model"):
        name, _, text = spec.partition("=")
        if name == "partition_date" and text != "__HIVE_DEFAULT_PARTITION__":
            days.append(dt.date.fromisoformat(text))
    if not days:
        raise UserError(
            f"Spark's {schema}.int_usage_hourly_by_model has no days: run `dbt build --target spark` first, "
            "or give --start and --end"
        )
    return start or min(days), end or max(days) + dt.timedelta(days=1)


def _bucket_range(bucket: str, first: dt.date, end: dt.date) -> tuple:
    """The bucket values [low, high) publish replaces for [first, end): a monthly table's months
    from the month of `first` (a month's row is whole on Spark, so it is replaced whole)."""
    if bucket == "month":
        return first.replace(day=1), end
    if bucket == "hour_start":
        return dt.datetime.combine(first, dt.time(), dt.UTC), dt.datetime.combine(end, dt.time(), dt.UTC)
    return first, end


def _spark_text(name: str, spark_type: str) -> str:
    """A Spark column as text for the staging table: exact decimals, a map as its JSON, an instant
    as epoch microseconds (no time zone or JVM default can shift it)."""
    column = f"`{name}`"
    if spark_type.startswith("map<"):
        return f"to_json({column}) as {column}"
    if spark_type == "timestamp":
        return f"cast(unix_micros({column}) as string) as {column}"
    return f"cast({column} as string) as {column}"


def _postgres_value(name: str, pg_type: str) -> sql.Composable:
    column = sql.Identifier(name)
    if pg_type == "timestamp with time zone":
        return sql.SQL("'epoch'::timestamptz + {}::bigint * interval '1 microsecond'").format(column)
    return sql.SQL("{}::{}").format(column, sql.SQL(pg_type))


def _partition_values(spark: SparkSQL, table: str, column: str, low: dt.date, high: dt.date) -> list[dt.date]:
    """The values of the table's partition column in [low, high], from the metastore (no scan)."""
    values = []
    for (spec,) in spark.sql(f"show partitions {table}"):
        name, _, text = spec.partition("=")
        if name == column and text != "__HIVE_DEFAULT_PARTITION__" and low <= dt.date.fromisoformat(text) <= high:
            values.append(dt.date.fromisoformat(text))
    return sorted(values)


def _stage_through_session(spark, pg, selects: list[str], staging, columns: list[str]) -> int:
    """The Spark rows into the staging table through this process, one Spark partition (a UTC day,
    or a month) at a time as Arrow, into Postgres' COPY as CSV (every non-NULL value quoted: '' stays
    '', an empty field is NULL). A whole 10M-row table through a local driver at once ran out of heap."""
    import pyarrow as pa
    from pyarrow import csv as pa_csv

    count = 0
    copy_sql = sql.SQL("copy {} ({}) from stdin with (format csv)").format(
        staging, sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with pg.cursor() as cur, cur.copy(copy_sql) as copy:
        for select in selects:
            for batch in spark.session.sql(select).toArrow().to_batches(max_chunksize=EXPORT_SLICE_ROWS):
                sink = pa.BufferOutputStream()
                pa_csv.write_csv(
                    pa.Table.from_batches([batch]),
                    sink,
                    write_options=pa_csv.WriteOptions(include_header=False, quoting_style="all_valid"),
                )
                copy.write(sink.getvalue().to_pybytes())
                count += batch.num_rows
    return count


def _stage_over_jdbc(spark, pg, selects: list[str], staging, columns: list[str]) -> int:
    """The Spark rows into the staging table, written by the cluster over JDBC (one statement)."""
    view = f"watchllm_publish_{uuid.uuid4().hex[:12]}"
    spark.sql(f"create temporary view {view} using jdbc options ({jdbc_options(pg, staging.as_string(pg))})")
    try:
        spark.sql(f"insert into {view} {' union all '.join(selects)}")
    finally:
        spark.sql(f"drop view if exists {view}")
    return pg.execute(sql.SQL("select count(*) from {}").format(staging)).fetchone()[0]


def publish(pg, start: dt.date | None, end: dt.date | None, progress: Callable[[str], None] = print) -> dict:
    """Replace, in the Postgres output tables, every bucket in [start, end) with what Spark built
    (buckets Spark no longer has in the range are deleted), every table in one transaction, and mark
    the Postgres-only outputs for rebuild from the range's first day.

    1. The Spark rows are staged in Postgres tables of this run (`<analytics>_publish.<table>__<run>`,
       all text), outside any transaction: staging takes no lock a build waits for.
    2. One transaction takes each table's build lock (the advisory lock of a Postgres build of that
       table) in a fixed order, deletes the range and inserts the staged rows, and lowers the
       pending-rebuild marks. Killed before its commit, nothing changed; after it, all changed.
    3. The staging tables are dropped (a dead run's are dropped by the next publish).
    """
    schema = settings.analytics_schema()
    run = uuid.uuid4().hex[:12]
    pg.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(staging_schema())))
    pg.execute("select pg_advisory_lock(hashtext(%s))", (_run_lock_key(run),))
    _drop_abandoned_staging(pg)
    copied: dict[str, int] = {}
    staged: dict[str, tuple] = {}
    try:
        with connect() as spark:
            first, end = _bounds(spark, schema, start, end)
            for table, bucket in PUBLISHED.items():
                types = dict(
                    pg.execute(
                        "select attname, format_type(atttypid, atttypmod) from pg_attribute"
                        " where attrelid = to_regclass(%s) and attnum > 0 and not attisdropped order by attnum",
                        (sql.Identifier(schema, table).as_string(pg),),
                    ).fetchall()
                )
                if not types:
                    raise UserError(f"{schema}.{table} does not exist in Postgres: run `dbt build` there first")
                spark_types = dict(_columns(spark, f"{schema}.{table}"))
                missing = [c for c in types if c not in spark_types]
                if missing:
                    raise UserError(
                        f"Spark's {schema}.{table} lacks {', '.join(missing)}: run `dbt build --target spark` first"
                    )
                staging = sql.Identifier(staging_schema(), f"{table}__{run}")
                pg.execute(
                    sql.SQL("create unlogged table {} ({})").format(
                        staging, sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in types)
                    )
                )
                writer = settings.spark_postgres_user()
                if writer and writer != pg.info.user and not spark.is_local:
                    # the cluster's own role writes the rows (Spark reads the columns first): this run's table only
                    pg.execute(
                        sql.SQL("grant usage on schema {} to {}").format(
                            sql.Identifier(staging_schema()), sql.Identifier(writer)
                        )
                    )
                    pg.execute(sql.SQL("grant select, insert on {} to {}").format(staging, sql.Identifier(writer)))
                low, high = _bucket_range(bucket, first, end)
                partition = PARTITION_COLUMNS[table]
                part_low = low.date() if isinstance(low, dt.datetime) else low
                part_high = high.date() if isinstance(high, dt.datetime) else high
                bucket_filter = (
                    f"`{bucket}` >= timestamp_micros({_micros(low)}) and `{bucket}` < timestamp_micros({_micros(high)})"
                    if bucket == "hour_start"
                    else f"`{bucket}` >= date'{low}' and `{bucket}` < date'{high}'"
                )
                columns = ", ".join(_spark_text(c, spark_types[c]) for c in types)
                if spark.is_local:
                    values = _partition_values(spark, f"{schema}.{table}", partition, part_low, part_high)
                    selects = [
                        f"select {columns} from {schema}.{table}"
                        f" where `{partition}` = date'{value}' and {bucket_filter}"
                        for value in values
                    ]
                    copied[table] = _stage_through_session(spark, pg, selects, staging, list(types))
                else:
                    select = (
                        f"select {columns} from {schema}.{table}"
                        f" where `{partition}` >= date'{part_low}' and `{partition}` <= date'{part_high}'"
                        f" and {bucket_filter}"
                    )
                    copied[table] = _stage_over_jdbc(spark, pg, [select], staging, list(types))
                staged[table] = (staging, types, low, high)
                progress(f"{table}: {copied[table]:,} rows staged")
        with pg.transaction():
            for table, (staging, types, low, high) in staged.items():
                target = sql.Identifier(schema, table)
                bucket = sql.Identifier(PUBLISHED[table])
                pg.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"watchllm_analytics.{schema}.{table}",))
                pg.execute(sql.SQL("delete from {} where {b} >= %s and {b} < %s").format(target, b=bucket), (low, high))
                pg.execute(
                    sql.SQL("insert into {} ({}) select {} from {}").format(
                        target,
                        sql.SQL(", ").join(map(sql.Identifier, types)),
                        sql.SQL(", ").join(_postgres_value(c, t) for c, t in types.items()),
                        staging,
                    )
                )
            _mark_pending_rebuilds(pg, schema, dt.datetime.combine(first, dt.time(), dt.UTC))
        progress(f"published {first} to {end} (exclusive): every table replaced in one transaction")
    finally:
        for staging, *_ in staged.values():
            with contextlib.suppress(Exception):
                pg.execute(sql.SQL("drop table if exists {}").format(staging))
        pg.execute("select pg_advisory_unlock(hashtext(%s))", (_run_lock_key(run),))
    return copied


def _micros(instant: dt.datetime) -> int:
    return (instant - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


def _mark_pending_rebuilds(pg, schema: str, first: dt.datetime) -> None:
    """The consumers of the published tables (the Postgres-only outputs among them) rebuild from
    `first` on their next run, as after a Postgres build that replaced those buckets."""
    marks = sql.Identifier(schema, "watchllm_pending_rebuilds")
    if pg.execute("select to_regclass(%s) is not null", (marks.as_string(pg),)).fetchone()[0]:
        pg.execute(
            sql.SQL(
                "update {} set pending_from = least(pending_from, %s)"
                " where producer = any(%s) and pending_from is not null"
            ).format(marks),
            (first, list(PUBLISHED)),
        )


def refresh_postgres_only_outputs(conn) -> None:
    """Rebuild usage_aggregations_local_daily (from its pending mark) and project_cost_forecast on
    Postgres, from the published tables."""
    from orchestration.core import database
    from orchestration.core.dbt_runner import run_dbt

    # one refresh at a time: two publishes that finish together would both replace the forecast table
    with database.connect(conn, autocommit=True) as lock:
        lock.execute("select pg_advisory_lock(hashtext('watchllm_analytics.publish.refresh'))")
        result = run_dbt(conn, ["run", "--select", *POSTGRES_ONLY_OUTPUTS], capture=True)
    if result.returncode != 0:
        raise UserError(
            "published, but rebuilding the Postgres-only outputs failed (they are marked, and the next "
            f"`dbt build` rebuilds them): {(result.stdout + result.stderr).strip().splitlines()[-1:]}"
        )
