"""`watchllm-analytics export`: one project's aggregates at one grain, as CSV or Parquet.

Rows come from the marts the dashboard reads (docs/contract.md, section 15), for the UTC days
--start .. --end (both included), oldest first. Money and rates are written as the exact decimal
text Postgres holds (`numeric::text`), never through a float; CSV has one header row. Rows are
streamed through a server-side cursor, so an export of any length holds one batch in memory.

A request counts once under each of its tags, so the rows of `--grain tag` do not add up to the
project's totals: its header says so (the CSV's value column, the Parquet file's metadata).
"""

from __future__ import annotations

import csv
import datetime as dt
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from psycopg import sql

from orchestration import settings
from orchestration.core import database
from orchestration.core.errors import UserError

FORMATS = ("csv", "parquet")
BATCH_ROWS = 10_000
TAG_NOTE = "a request counts once under each of its tags: tag rows do not add up to the project's totals"


@dataclass(frozen=True)
class Grain:
    table: str
    bucket: str  # the time column: hour_start (timestamptz) or date
    keys: tuple[str, ...]  # the grain's other columns, in order
    dimension: str | None = None  # usage_by_dimension_daily's dimension


# What each grain reads: its mart, and the columns that identify a row.
GRAINS = {
    "hour": Grain("usage_aggregations_hourly", "hour_start", ()),
    "day": Grain("usage_aggregations_daily", "date", ()),
    "model": Grain("usage_by_model_daily", "date", ("provider", "model")),
    "api_key": Grain("usage_by_dimension_daily", "date", ("value",), "api_key"),
    "end_user": Grain("usage_by_dimension_daily", "date", ("value",), "end_user"),
    "tag": Grain("usage_by_dimension_daily", "date", ("value",), "tag"),
}

# The figures every grain exports: (column, kind); kind decides the Parquet type.
FIGURES = (
    ("total_requests", "int"),
    ("cached_requests", "int"),
    ("cache_hit_rate", "decimal"),
    ("error_requests", "int"),
    ("error_rate", "decimal"),
    ("tokens_input", "int"),
    ("tokens_output", "int"),
    ("total_cost_usd", "decimal"),
    ("total_potential_cost_usd", "decimal"),
    ("total_savings_usd", "decimal"),
    ("prompt_cache_savings_usd", "decimal"),
    ("unpriced_requests", "int"),
    ("latency_p50_ms", "decimal"),
    ("latency_p95_ms", "decimal"),
    ("latency_p99_ms", "decimal"),
)
# The marts without a stored rate compute it from the same sums.
COMPUTED = {
    "cache_hit_rate": "round(100 * cached_requests::numeric / nullif(total_requests, 0), 2)",
    "error_rate": "round(100 * error_requests::numeric / nullif(total_requests, 0), 2)",
}


@dataclass(frozen=True)
class ExportRequest:
    project_id: uuid.UUID
    start: dt.date
    end: dt.date
    grain: str
    format: str = "csv"


def parse_day(text: str, flag: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UserError(f"{flag} {text!r} is not a day: pass it as YYYY-MM-DD (UTC)") from None


def validate(request: ExportRequest) -> None:
    if request.grain not in GRAINS:
        raise UserError(f"--grain must be one of {', '.join(GRAINS)}, got {request.grain!r}")
    if request.format not in FORMATS:
        raise UserError(f"--format must be csv or parquet, got {request.format!r}")
    if request.end < request.start:
        raise UserError(f"--end {request.end} is before --start {request.start}: pass the earlier day first")


TAG_HEADER = f"tag ({TAG_NOTE})"


def header(grain_name: str) -> list[str]:
    grain = GRAINS[grain_name]
    keys = [TAG_HEADER if grain_name == "tag" else grain_name] if grain.dimension else list(grain.keys)
    return ["project_id", grain.bucket, *keys, *(column for column, _ in FIGURES)]


def _query(request: ExportRequest, columns: set[str]) -> sql.Composed:
    grain = GRAINS[request.grain]
    selected = [sql.SQL("project_id::text"), sql.SQL("{}").format(sql.Identifier(grain.bucket))]
    selected += [sql.Identifier(key) for key in grain.keys]
    for column, kind in FIGURES:
        if column in columns:
            expression = sql.Identifier(column)
        elif column in COMPUTED:
            expression = sql.SQL(COMPUTED[column])
        else:
            expression = sql.SQL("null")
        selected.append(sql.SQL("({})::text").format(expression) if kind == "decimal" else expression)
    bucket = sql.Identifier(grain.bucket)
    if grain.bucket == "hour_start":
        window = sql.SQL(
            "{b} >= ({start}::date::timestamp at time zone 'UTC') and {b} < ({end}::date::timestamp at time zone 'UTC')"
        )
    else:
        window = sql.SQL("{b} >= {start}::date and {b} < {end}::date")
    where = [
        sql.SQL("project_id = {}").format(sql.Literal(str(request.project_id))),
        window.format(b=bucket, start=sql.Literal(request.start), end=sql.Literal(request.end + dt.timedelta(days=1))),
    ]
    if grain.dimension:
        where.append(sql.SQL("dimension = {}").format(sql.Literal(grain.dimension)))
    return sql.SQL("select {} from {} where {} order by {}").format(
        sql.SQL(", ").join(selected),
        sql.Identifier(settings.analytics_schema(), grain.table),
        sql.SQL(" and ").join(where),
        sql.SQL(", ").join([bucket, *(sql.Identifier(k) for k in grain.keys)]),
    )


def _table_columns(cur, table: str) -> set[str]:
    rows = cur.execute(
        "select column_name from information_schema.columns where table_schema = %s and table_name = %s",
        (settings.analytics_schema(), table),
    ).fetchall()
    if not rows:
        raise UserError(
            f"{settings.analytics_schema()}.{table} does not exist: run `watchllm-analytics dbt build` first"
        )
    return {row[0] for row in rows}


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return str(value)


def rows(conn_info: database.Connection, request: ExportRequest) -> Iterator[tuple]:
    """The export's rows in order, in batches from a server-side cursor (one transaction)."""
    validate(request)
    with database.connect(conn_info) as conn:
        conn.execute("set timezone to 'UTC'")
        with conn.cursor() as cur:
            columns = _table_columns(cur, GRAINS[request.grain].table)
        with conn.cursor(name="watchllm_export") as cur:
            cur.itersize = BATCH_ROWS
            cur.execute(_query(request, columns))
            yield from cur


@contextmanager
def _output(path: str, binary: bool) -> Iterator[IO]:
    if path == "-":
        stream = sys.stdout.buffer if binary else sys.stdout
        yield stream
        stream.flush()
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")  # a killed export leaves no half file under the name
    with open(
        partial, "wb" if binary else "w", newline=None if binary else "", encoding=None if binary else "utf-8"
    ) as stream:
        yield stream
    partial.replace(target)


def default_path(request: ExportRequest) -> str:
    return f"watchllm-{request.project_id}-{request.grain}-{request.start}-{request.end}.{request.format}"


def export(
    conn_info: database.Connection,
    request: ExportRequest,
    out: str,
    progress: Callable[[str], None] | None = None,
) -> int:
    """Write the export to `out` (a path, or '-' for stdout); returns the number of rows."""
    validate(request)
    written = 0
    started = last_report = time.monotonic()

    def counted(source: Iterator[tuple]) -> Iterator[tuple]:
        nonlocal written, last_report
        for row in source:
            written += 1
            now = time.monotonic()
            if progress and now - last_report >= 2:
                last_report = now
                progress(f"exported {written:,} rows ({written / (now - started):,.0f} rows/s)")
            yield row

    source = counted(rows(conn_info, request))
    if request.format == "csv":
        with _output(out, binary=False) as stream:
            writer = csv.writer(stream, lineterminator="\n")
            writer.writerow(header(request.grain))
            for row in source:
                writer.writerow([_cell(value) for value in row])
    else:
        _write_parquet(request, source, out)
    return written


def _write_parquet(request: ExportRequest, source: Iterator[tuple], out: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    grain = GRAINS[request.grain]
    names = header(request.grain)
    if grain.dimension:
        names[2] = request.grain  # the note goes into the file's metadata
    types = [pa.string(), pa.timestamp("us", tz="UTC") if grain.bucket == "hour_start" else pa.date32()]
    types += [pa.string()] * len(grain.keys)
    types += [pa.int64() if kind == "int" else pa.string() for _, kind in FIGURES]
    metadata = {"watchllm.decimals": "money and rates are exact decimal text"}
    if request.grain == "tag":
        metadata["watchllm.note"] = TAG_NOTE
    schema = pa.schema(list(zip(names, types, strict=True)), metadata=metadata)
    # a Parquet file is written front to back, so stdout (not seekable) works as well as a file
    with _output(out, binary=True) as stream, pq.ParquetWriter(pa.PythonFile(stream, mode="w"), schema) as writer:
        batch: list[tuple] = []
        for row in source:
            batch.append(row)
            if len(batch) >= BATCH_ROWS:
                writer.write_table(_table(batch, schema))
                batch = []
        if batch:
            writer.write_table(_table(batch, schema))


def _table(batch: list[tuple], schema):
    import pyarrow as pa

    columns = list(zip(*batch, strict=True)) if batch else [() for _ in schema]
    return pa.table(
        [pa.array(list(column), type=field.type) for column, field in zip(columns, schema, strict=True)], schema=schema
    )
