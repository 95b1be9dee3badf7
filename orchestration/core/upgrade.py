"""`watchllm-analytics upgrade`: bring a database built by any earlier release up to this one.

docs/production.md, "Upgrading", is the user's page. The steps, each safe to run again:

1. Retention watermark. Days whose raw rows were partly deleted (an earlier release's retention
   deleted rows in batches, or the proxy's own) must never be rebuilt from what is left. A day is
   whole when no (project, hour) has fewer kept raw rows than int_usage_hourly_by_model counted;
   the raw watermark is set after the last day that is not.
2. Grains that grew. A unique index an earlier release declared and this one does not (the hourly
   pass is now one row per service tier and prompt band too) is dropped before the rebuild, which
   would otherwise write finer rows into the narrower index.
3. Recompute. One range rebuild (`dbt build --vars '{start, end}'`, unit tests excluded) from the
   watermark to tomorrow: every bucket whose raw rows exist is computed again with this release's
   columns (latency sketches and percentiles, cached tokens), and the models an earlier release
   did not have are built. Buckets without raw rows keep what they have; a column an earlier
   release did not compute stays NULL there (see the docs for which).
4. Contracts. Every column of every contract table gets the type, not-null and check constraints
   its contract declares, and every index the model's config declares, where they are missing.
   A bucket an earlier release aggregated and the rebuild could not recompute gets the values that
   release implied for a column it did not have (IMPLIED_BY_EARLIER_RELEASES).
5. The schema version, recorded in analytics.watchllm_schema_version.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from psycopg import sql

from orchestration import settings
from orchestration.core import database, retention
from orchestration.core.dbt_runner import run_dbt
from orchestration.core.errors import UserError

# Days with fewer kept raw rows than the hourly pass counted: retention (or someone) deleted part of them.
TOUCHED_DAYS_SQL = """
with raw_hours as (
    select project_id, {hour} as hour_start, count(*) as requests
    from {validated}
    where is_kept
    group by 1, 2
),
aggregated_hours as (
    select project_id, hour_start, sum(total_requests) as requests
    from {hourly_by_model}
    group by project_id, hour_start
)
select max((aggregated_hours.hour_start at time zone 'UTC')::date)
from aggregated_hours
left join raw_hours using (project_id, hour_start)
where coalesce(raw_hours.requests, 0) < aggregated_hours.requests
  and aggregated_hours.hour_start >= (
      select date_trunc('day', min(created_at) at time zone 'UTC') at time zone 'UTC' from {logs}
  )
"""


# Grain columns an earlier release did not have, and what it implied for them: it priced every
# request at the standard tier below any prompt-size threshold. (The class counts of its buckets
# stay NULL, unknown, where the rebuild could not recompute them.)
IMPLIED_BY_EARLIER_RELEASES = {
    ("int_usage_hourly_by_model", "service_tier"): "'standard'",
    ("int_usage_hourly_by_model", "prompt_band"): "0",
    ("int_usage_hourly_by_model", "error_requests"): "0",
}


@dataclass
class UpgradeReport:
    previous_version: str | None
    version: str
    rebuilt_from: dt.date | None = None
    watermark_set: dt.datetime | None = None
    added: list[str] = field(default_factory=list)  # constraints, types and indexes added


def release_version() -> str:
    return metadata.version("watchllm-analytics")


def _version_table() -> sql.Identifier:
    return sql.Identifier(settings.analytics_schema(), "watchllm_schema_version")


def recorded_version(cur) -> str | None:
    schema = settings.analytics_schema().replace('"', '""')
    if not cur.execute("select to_regclass(%s) is not null", (f'"{schema}".watchllm_schema_version',)).fetchone()[0]:
        return None
    row = cur.execute(
        sql.SQL("select version from {} order by upgraded_at desc limit 1").format(_version_table())
    ).fetchone()
    return row[0] if row else None


def _exists(cur, schema: str, table: str) -> bool:
    return cur.execute("select to_regclass(%s) is not null", (f'"{schema}"."{table}"',)).fetchone()[0]


def _set_raw_watermark(conn, log) -> tuple[dt.datetime | None, dt.date | None]:
    """The raw watermark after the last partly deleted day; and the first day to recompute."""
    analytics, source = settings.analytics_schema(), settings.source_schema()
    logs = sql.Identifier(source, "usage_logs")
    first_raw = conn.execute(sql.SQL("select min(created_at) from {}").format(logs)).fetchone()[0]
    if first_raw is None:
        return None, None
    first_day = first_raw.astimezone(dt.UTC).date()
    touched = None
    if _exists(conn, analytics, "int_usage_hourly_by_model") and _exists(conn, analytics, "int_usage_logs_validated"):
        hour = sql.SQL("date_trunc('hour', created_at at time zone 'UTC') at time zone 'UTC'")
        touched = conn.execute(
            sql.SQL(TOUCHED_DAYS_SQL).format(
                validated=sql.Identifier(analytics, "int_usage_logs_validated"),
                hourly_by_model=sql.Identifier(analytics, "int_usage_hourly_by_model"),
                logs=logs,
                hour=hour,
            )
        ).fetchone()[0]
    retention.ensure_watermarks(conn)
    current = retention.watermark(conn, "usage_logs")
    if touched is None:
        start = first_day if current is None else max(first_day, current.astimezone(dt.UTC).date())
        return None, start
    mark = dt.datetime.combine(touched + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    if current is None or mark > current:
        retention.raise_watermark(conn, "usage_logs", mark)
        log(f"raw rows of {touched} and before were partly deleted: those days keep their aggregates")
        return mark, max(first_day, mark.date())
    return None, max(first_day, current.astimezone(dt.UTC).date())


def _manifest() -> dict:
    path = Path(os.environ.get("DBT_TARGET_PATH") or settings.PROJECT_DIR / "target") / "manifest.json"
    if not path.is_absolute():
        path = settings.PROJECT_DIR / path
    return json.loads(path.read_text())


def _contract_tables(manifest: dict) -> list[dict]:
    """The model nodes built as tables on Postgres with an enforced contract."""
    return [
        node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
        and node["config"].get("materialized") in ("table", "incremental")
        and node["config"].get("contract", {}).get("enforced")
        and node["config"].get("enabled", True)
    ]


def _apply_contract(conn, node: dict, report: UpgradeReport) -> None:
    """Types, not-null and check constraints of the node's contract, and its configured indexes."""
    schema, table = node["schema"], node["alias"]
    if not _exists(conn, schema, table):
        return
    relation = sql.Identifier(schema, table)
    actual = {
        name: (data_type, not_null)
        for name, data_type, not_null in conn.execute(
            "select attname, format_type(atttypid, atttypmod), attnotnull from pg_attribute"
            " where attrelid = %s::regclass and attnum > 0 and not attisdropped",
            (f'"{schema}"."{table}"',),
        )
    }
    existing_checks = {
        definition
        for (definition,) in conn.execute(
            "select pg_get_constraintdef(oid) from pg_constraint where conrelid = %s::regclass and contype = 'c'",
            (f'"{schema}"."{table}"',),
        )
    }
    for column in node["columns"].values():
        name = column["name"]
        if name not in actual:
            raise UserError(f"{schema}.{table} has no column {name} after the rebuild: run `dbt build`, then upgrade")
        wanted = _type_name(conn, column["data_type"])
        if actual[name][0] != wanted:
            conn.execute(
                sql.SQL("alter table {} alter column {} type {} using {}::{}").format(
                    relation, sql.Identifier(name), sql.SQL(wanted), sql.Identifier(name), sql.SQL(wanted)
                )
            )
            report.added.append(f"{table}.{name} type {wanted}")
        for constraint in column.get("constraints", []):
            if constraint["type"] == "not_null" and not actual[name][1]:
                if (table, name) in IMPLIED_BY_EARLIER_RELEASES:
                    conn.execute(
                        sql.SQL("update {} set {} = {} where {} is null").format(
                            relation,
                            sql.Identifier(name),
                            sql.SQL(IMPLIED_BY_EARLIER_RELEASES[(table, name)]),
                            sql.Identifier(name),
                        )
                    )
                nulls = conn.execute(
                    sql.SQL("select count(*) from {} where {} is null").format(relation, sql.Identifier(name))
                ).fetchone()[0]
                if nulls:
                    raise UserError(
                        f"{schema}.{table}.{name} has {nulls:,} NULL values and its contract says not null:"
                        " rebuild those buckets (`watchllm-analytics rebuild`), then run upgrade again"
                    )
                conn.execute(
                    sql.SQL("alter table {} alter column {} set not null").format(relation, sql.Identifier(name))
                )
                report.added.append(f"{table}.{name} not null")
            elif (
                constraint["type"] == "check"
                and _check_definition(conn, relation, constraint["expression"]) not in existing_checks
            ):
                conn.execute(
                    sql.SQL("alter table {} add check ({})").format(relation, sql.SQL(constraint["expression"]))
                )
                report.added.append(f"{table} check ({constraint['expression']})")
    indexed = set(_indexes(conn, schema, table))
    for index in node["config"].get("indexes") or []:
        key = (tuple(index["columns"]), bool(index.get("unique")))
        if key not in indexed:
            conn.execute(
                sql.SQL("create {} index on {} ({})").format(
                    sql.SQL("unique" if key[1] else ""), relation, sql.SQL(", ").join(map(sql.Identifier, key[0]))
                )
            )
            report.added.append(f"{table} {'unique ' if key[1] else ''}index ({', '.join(key[0])})")


def _indexes(conn, schema: str, table: str) -> dict[tuple[tuple[str, ...], bool], str]:
    """(columns, unique) -> index name, for every index of the table."""
    return {
        (tuple(columns), unique): name
        for columns, unique, name in conn.execute(
            "select array_agg(a.attname order by k.ordinality), i.indisunique, i.indexrelid::regclass::text"
            " from pg_index as i"
            " cross join lateral unnest(i.indkey::int2[]) with ordinality as k(attnum, ordinality)"
            " join pg_attribute as a on a.attrelid = i.indrelid and a.attnum = k.attnum"
            " where i.indrelid = %s::regclass group by i.indexrelid, i.indisunique",
            (f'"{schema}"."{table}"',),
        )
    }


def _drop_superseded_unique_indexes(conn, manifest: dict, report: UpgradeReport) -> None:
    """Unique indexes of the incremental models that their config no longer declares (a grain that grew)."""
    for node in manifest["nodes"].values():
        if node["resource_type"] != "model" or node["config"].get("materialized") in ("view", "sql_function"):
            continue
        schema, table = node["schema"], node["alias"]
        if not node["config"].get("indexes") or not _exists(conn, schema, table):
            continue
        declared = {(tuple(index["columns"]), bool(index.get("unique"))) for index in node["config"]["indexes"]}
        for key, name in _indexes(conn, schema, table).items():
            if key[1] and key not in declared:
                conn.execute(sql.SQL("drop index {}").format(sql.SQL(name)))
                report.added.append(f"{table}: dropped unique index ({', '.join(key[0])}), no longer its grain")


def _type_name(conn, data_type: str) -> str:
    """A contract's data_type as format_type prints it (timestamptz -> timestamp with time zone)."""
    return conn.execute("select format_type(%s::regtype, null)", (data_type,)).fetchone()[0]


def _check_definition(conn, relation: sql.Identifier, expression: str) -> str:
    """How Postgres prints `expression` as a check constraint of a table like `relation`."""
    with conn.transaction(force_rollback=True):
        conn.execute(sql.SQL("create temporary table upgrade_probe (like {})").format(relation))
        conn.execute(sql.SQL("alter table upgrade_probe add check ({})").format(sql.SQL(expression)))
        return conn.execute(
            "select pg_get_constraintdef(oid) from pg_constraint where conrelid = 'upgrade_probe'::regclass"
            " and contype = 'c'"
        ).fetchone()[0]


def upgrade(conn_info: database.Connection, log: Callable[[str], None] = print) -> UpgradeReport:
    """Upgrade the database `conn_info` points at; returns what was done."""
    with database.connect(conn_info, autocommit=True) as conn:
        report = UpgradeReport(previous_version=recorded_version(conn.cursor()), version=release_version())
        log(
            f"upgrading from {report.previous_version or 'a release before versions were recorded'} to {report.version}"
        )
        report.watermark_set, report.rebuilt_from = _set_raw_watermark(conn, log)
    if run_dbt(conn_info, ["parse"]).returncode != 0:
        raise UserError("dbt could not parse the project: see dbt's output above")
    with database.connect(conn_info, autocommit=True) as conn, conn.transaction():
        _drop_superseded_unique_indexes(conn, _manifest(), report)
    args = ["build", *settings.PRODUCTION_DBT_ARGS]
    if report.rebuilt_from is not None:
        end = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2)
        args += ["--vars", json.dumps({"start": report.rebuilt_from.isoformat(), "end": end.isoformat()})]
        log(f"recomputing every bucket from {report.rebuilt_from} (UTC) on from the raw rows")
    if run_dbt(conn_info, args).returncode != 0:
        raise UserError("the rebuild failed: see dbt's output above, fix what it says, then run upgrade again")
    manifest = _manifest()
    with database.connect(conn_info, autocommit=True) as conn:
        for node in _contract_tables(manifest):
            with conn.transaction():
                _apply_contract(conn, node, report)
        with conn.transaction():
            conn.execute(
                sql.SQL(
                    "create table if not exists {}"
                    " (version text not null, upgraded_at timestamptz not null default now())"
                ).format(_version_table())
            )
            conn.execute(sql.SQL("alter table {} enable row level security").format(_version_table()))
            conn.execute(sql.SQL("insert into {} (version) values (%s)").format(_version_table()), (report.version,))
    for change in report.added:
        log(f"  added {change}")
    log(f"upgraded to {report.version}")
    return report
