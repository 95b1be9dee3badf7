"""Rows between Postgres and Spark: `spark export-logs` (usage_logs into Spark, a UTC day at a time,
resumable) and `spark publish` (the Spark-built aggregates into the Postgres output tables).

Both move rows through this process (psycopg on one side, a local Spark session on the other), a
day or a table at a time. That suits a migration of months of history on one machine; a lake
that already holds the logs skips export-logs.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from psycopg import sql

from orchestration import settings
from orchestration.core import retention
from orchestration.core.errors import UserError
from orchestration.spark.session import create_usage_logs

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
}
MONEY_COLUMNS = ("cost_usd", "potential_cost_usd")
# decimal(38,18): at most 20 digits before the point and 18 after it
SPARK_MONEY_LIMIT = Decimal(10) ** 20
SPARK_MONEY_STEP = Decimal("1e-18")

EXPORT_SLICE_ROWS = 100_000

# The outputs `publish` copies, with the columns that name one bucket (replaced whole).
PUBLISHED = {
    "int_usage_hourly_by_model": ("project_id", "hour_start"),
    "usage_aggregations_hourly": ("project_id", "hour_start"),
    "usage_by_model_daily": ("project_id", "date"),
    "usage_aggregations_daily": ("project_id", "date"),
    "int_usage_daily_by_tier_and_band": ("project_id", "date"),
    "project_savings_monthly": ("project_id", "month"),
    "model_cost_counterfactual_monthly": ("project_id", "month"),
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
}


@dataclass
class DayExport:
    day: dt.date | None
    rows: int
    action: str  # "exported", "already there" or "touched by retention" (never overwritten with part of a day)


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
    """The columns of section 14 the Postgres usage_logs has."""
    present = {
        name
        for (name,) in pg.execute(
            "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped",
            (logs.as_string(pg),),
        )
    }
    return [column for column in CLASS_COLUMNS if column in present]


def _add_class_columns(spark, table: str, wanted: list[str]) -> bool:
    """Give the Spark table the class columns Postgres has; True when it had to (every day then
    goes again: the days already there lack the new columns' values)."""
    have = {field.name for field in spark.table(table).schema}
    missing = [column for column in wanted if column not in have]
    if missing:
        spark.sql(f"alter table {table} add columns ({', '.join(f'{c} {CLASS_COLUMNS[c]}' for c in missing)})")
    return bool(missing)


def _day_as_arrow(pg, logs, where, params, log_day, class_columns: list[str], schema):
    """One slice of usage_logs as an Arrow table with the Spark table's columns (`schema`), through
    Postgres' CSV COPY (text, so every numeric arrives as written; the money was checked to fit
    before). A class column the Spark table has and Postgres lacks is NULL."""
    import pyarrow as pa
    from pyarrow import csv as pa_csv

    money = pa.decimal128(38, 18)
    class_types = {"bigint": pa.int64(), "string": pa.string()}
    types = {
        "id": pa.string(),
        "project_id": pa.string(),
        "created_at_us": pa.int64(),
        "provider": pa.string(),
        "model": pa.string(),
        "tokens_input": pa.int64(),
        "tokens_output": pa.int64(),
        "cost_usd": money,
        "potential_cost_usd": money,
        "cached": pa.bool_(),
        "latency_ms": pa.int32(),
        **{c: class_types[CLASS_COLUMNS[c]] for c in class_columns},
    }
    columns = sql.SQL(", ").join(
        sql.SQL("(extract(epoch from created_at) * 1000000)::bigint as created_at_us")
        if c == "created_at"
        else sql.SQL("{}::text").format(sql.Identifier(c))
        if c in ("id", "project_id")
        else sql.Identifier(c)
        for c in (*LOG_COLUMNS, *class_columns)
    )
    copy_sql = sql.SQL("copy (select {} from {} where {}) to stdout with (format csv)").format(columns, logs, where)
    buffer = bytearray()
    with pg.cursor() as cur, cur.copy(copy_sql, params) as copy:
        for chunk in copy:
            buffer += chunk
    read = pa_csv.read_csv(
        pa.BufferReader(bytes(buffer)),
        read_options=pa_csv.ReadOptions(column_names=list(types)),
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
    created_at = read.column("created_at_us").cast(pa.timestamp("us", tz="UTC"))
    arrays = []
    for field in schema:
        if field.name == "created_at":
            arrays.append(created_at)
        elif field.name == "created_date":
            arrays.append(pa.array([log_day] * read.num_rows, type=pa.date32()))
        elif field.name in read.column_names:
            arrays.append(read.column(field.name))
        else:
            arrays.append(pa.nulls(read.num_rows, type=class_types[CLASS_COLUMNS[field.name]]))
    return pa.Table.from_arrays(arrays, names=[field.name for field in schema])


def export_logs(pg, start: dt.date | None, end: dt.date | None, progress: Callable[[str], None] = print) -> list:
    """Copy usage_logs into the Spark table, replacing each UTC day whose row count differs (resumable)."""
    from orchestration.spark.session import session

    logs = sql.Identifier(settings.source_schema(), "usage_logs")
    bounds = sql.SQL("")
    params: list = []
    if start:
        bounds += sql.SQL(" and created_at >= %s")
        params.append(dt.datetime.combine(start, dt.time(), dt.UTC))
    if end:
        bounds += sql.SQL(" and created_at < %s")
        params.append(dt.datetime.combine(end, dt.time(), dt.UTC))
    day = sql.SQL("(created_at at time zone 'UTC')::date")
    query = sql.SQL("select {day}, count(*) from {logs} where true{bounds} group by 1 order by 1 nulls first")
    days = pg.execute(query.format(day=day, logs=logs, bounds=bounds), params).fetchall()
    if start or end:
        days = [(d, n) for d, n in days if d is not None]  # rows without created_at belong to no range
    done: list[DayExport] = []
    class_columns = _class_columns_in(pg, logs)
    with session() as spark:
        table = create_usage_logs(spark)
        widened = _add_class_columns(spark, table, class_columns)
        schema = spark.table(table).schema
        there = {
            row[0]: row[1] for row in spark.sql(f"select created_date, count(*) from {table} group by 1").collect()
        }
        if widened:
            there = {}
        for number, (log_day, count) in enumerate(days, start=1):
            if there.get(log_day) == count:
                done.append(DayExport(log_day, count, "already there"))
                continue
            where = (
                sql.SQL("created_at is null") if log_day is None else sql.SQL("created_at >= %s and created_at < %s")
            )
            day_params = (
                []
                if log_day is None
                else [
                    dt.datetime.combine(log_day, dt.time(), dt.UTC),
                    dt.datetime.combine(log_day + dt.timedelta(days=1), dt.time(), dt.UTC),
                ]
            )
            with pg.transaction():
                # one snapshot for the watermark and the rows: retention deletes a day and moves the
                # watermark in one transaction, so this sees the day whole, or gone and marked
                pg.execute("set transaction isolation level repeatable read")
                touched = retention.watermark(pg, "usage_logs")
                if log_day is not None and touched is not None and log_day < touched.astimezone(dt.UTC).date():
                    done.append(DayExport(log_day, count, "touched by retention"))
                    progress(f"[{number}/{len(days)}] {log_day}: touched by retention, Spark keeps its copy")
                    continue
                _check_money_fits(pg, logs, where, day_params)
                rows = _day_as_arrow(pg, logs, where, day_params, log_day, class_columns, schema)
            # In slices of EXPORT_SLICE_ROWS (a local relation travels in one task: a whole day of a
            # busy proxy would not fit the driver's heap), one file per slice (Arrow batches would
            # make dozens of small ones). The first slice overwrites the day's partition (dynamic
            # partition overwrite: this day only), the others append; a run that dies in between
            # leaves a count that differs, so the next run exports the day again.
            for first in range(0, max(rows.num_rows, 1), EXPORT_SLICE_ROWS):
                piece = spark.createDataFrame(rows.slice(first, EXPORT_SLICE_ROWS), schema).coalesce(1)
                piece.write.insertInto(table, overwrite=first == 0)
            done.append(DayExport(log_day, count, "exported"))
            progress(f"[{number}/{len(days)}] {log_day or 'no created_at'}: {count:,} rows exported")
    return done


def _copy_as_csv(frame, columns: list[str], copy) -> int:
    """Write the frame's rows into a Postgres `COPY ... (format csv)` and return how many.

    The rows come to this process as Arrow (a slice at a time, not row objects) and go out as CSV:
    maps as their JSON text (jsonb reads it), decimals as exact text, timestamps with their zone.
    Every non-NULL value is quoted, so an empty string stays one and an empty field is NULL.
    """
    import pyarrow as pa
    from pyarrow import csv as pa_csv
    from pyspark.sql import functions as F
    from pyspark.sql.types import MapType

    types = {field.name: field.dataType for field in frame.schema.fields}
    selected = frame.select(*(F.to_json(c).alias(c) if isinstance(types[c], MapType) else F.col(c) for c in columns))
    table = selected.toArrow()
    if table.num_rows:
        sink = pa.BufferOutputStream()
        pa_csv.write_csv(
            table, sink, write_options=pa_csv.WriteOptions(include_header=False, quoting_style="all_valid")
        )
        copy.write(sink.getvalue().to_pybytes())
    return table.num_rows


def _partition_values(spark, table: str, column: str, first, end) -> list:
    """The values of the table's partition column in [first, end), from the metastore (no scan)."""
    values = []
    for (spec,) in spark.sql(f"show partitions {table}").collect():
        name, _, text = spec.partition("=")
        if name != column or text == "__HIVE_DEFAULT_PARTITION__":
            continue
        value = dt.date.fromisoformat(text)
        if (first is None or value >= first) and (end is None or value < end):
            values.append(value)
    return sorted(values)


def publish(pg, start: dt.date | None, end: dt.date | None, progress: Callable[[str], None] = print) -> dict:
    """Replace, in the Postgres output tables, every bucket the Spark build has in [start, end)
    (whole buckets, one transaction per table); buckets Spark does not have stay as they are.

    Rows travel one Spark partition (a UTC day, or a month) at a time and stream straight into
    Postgres' COPY: a whole table through the driver at once ran a local Spark out of heap at 10M rows.
    """
    from orchestration.spark.session import session

    schema = settings.analytics_schema()
    copied: dict[str, int] = {}
    with session() as spark:
        for table, bucket in PUBLISHED.items():
            columns = [
                r[0]
                for r in pg.execute(
                    "select column_name from information_schema.columns where table_schema = %s and table_name = %s"
                    " order by ordinal_position",
                    (schema, table),
                )
            ]
            if not columns:
                raise UserError(f"{schema}.{table} does not exist in Postgres: run `dbt build` there first")
            time_column = bucket[1]
            first = start.replace(day=1) if start and time_column == "month" else start
            spark_table = f"{schema}.{table}"
            partition_column = PARTITION_COLUMNS[table]
            slices = _partition_values(spark, spark_table, partition_column, first, end)
            target = sql.Identifier(schema, table)
            column_list = sql.SQL(", ").join(map(sql.Identifier, columns))
            key = sql.SQL(", ").join(map(sql.Identifier, bucket))
            count = 0
            with pg.transaction(), pg.cursor() as cur:
                # the lock every Postgres build of this table takes: a build and a publish never interleave
                cur.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"watchllm_analytics.{schema}.{table}",))
                cur.execute(
                    sql.SQL("create temporary table published (like {} including defaults) on commit drop").format(
                        target
                    )
                )
                copy_sql = sql.SQL("copy published ({}) from stdin with (format csv)").format(column_list)
                with cur.copy(copy_sql) as copy:
                    for value in slices:
                        frame = spark.table(spark_table).where(f"{partition_column} = date'{value.isoformat()}'")
                        if first:
                            frame = frame.where(frame[time_column] >= first)
                        if end:
                            frame = frame.where(frame[time_column] < end)
                        count += _copy_as_csv(frame, columns, copy)
                cur.execute(
                    sql.SQL("delete from {t} where ({k}) in (select distinct {k} from published)").format(
                        t=target, k=key
                    )
                )
                cur.execute(sql.SQL("insert into {t} ({c}) select {c} from published").format(t=target, c=column_list))
            copied[table] = count
            progress(f"{table}: {count:,} rows published ({len(slices)} partitions)")
    return copied
