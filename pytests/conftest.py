"""Shared fixtures: one embedded Postgres for the session, a fresh database per scenario."""

from __future__ import annotations

import csv
import datetime as dt
import fcntl
import hashlib
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from orchestration import settings
from orchestration.core import database

REPO = settings.PROJECT_DIR
SEED = REPO / "seeds" / "model_pricing.csv"
# Builds run with a session TimeZone far east of UTC, reads with one far west: bucket boundaries
# must not move.
BUILD_TIMEZONE = "Pacific/Kiritimati"  # UTC+14
READ_TIMEZONE = "America/Adak"  # UTC-10 / -9

for _name in (*settings.LIBPQ_VARIABLES, "PGSSLMODE", "PGTZ"):
    os.environ.pop(_name, None)  # the suite never touches a database the user pointed PG* at

# Under pytest-xdist every worker gets its own dbt target and log directories (inherited by every
# dbt subprocess): run_results.json, partial parses and logs of parallel builds must not mix.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
DBT_TARGET = REPO / "target" / f"pytest-{_WORKER}"
os.environ["DBT_TARGET_PATH"] = str(DBT_TARGET)
os.environ["DBT_LOG_PATH"] = str(REPO / "logs" / f"pytest-{_WORKER}")


def target_dir(database: str, args: tuple[str, ...]) -> Path:
    """The dbt target directory of one CLI call: one per database and kind of call.

    dbt re-parses the whole project (~5 s) whenever the profile (here PGDATABASE) or the --vars
    differ from those of the parse saved in its target directory, and reuses it (~1 s) otherwise.
    Keyed this way, the repeated plain builds of a test database keep their partial parse while
    range rebuilds (with vars) and other databases' builds go on around them.
    """
    if args[:1] == ("dbt",):
        kind = "dbt"
        if "--vars" in args:
            kind += "-vars-" + hashlib.sha1(args[args.index("--vars") + 1].encode()).hexdigest()[:10]
    else:
        kind = args[0] if args else "cli"
    return DBT_TARGET / f"{database}-{kind}"


@dataclass
class Db:
    """One test database: libpq variables, a connection factory, and the CLI run against it."""

    env: dict[str, str]
    last_target: Path | None = None  # the dbt target directory of the latest CLI call (its run_results.json)

    def connect(self, timezone: str = READ_TIMEZONE) -> psycopg.Connection:
        conn = psycopg.connect(
            host=self.env["PGHOST"],
            port=self.env["PGPORT"],
            user=self.env["PGUSER"],
            dbname=self.env["PGDATABASE"],
            autocommit=True,
            row_factory=dict_row,
        )
        conn.execute(f"set timezone = '{timezone}'")
        return conn

    def query(self, sql: str, params=None) -> list[dict]:
        with self.connect() as conn:
            return conn.execute(sql, params).fetchall()

    def cli(
        self, *args: str, check: bool = True, extra_env: dict | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess:
        env = {
            **os.environ,
            **self.env,
            "DBT_TARGET_PATH": str(target_dir(self.env["PGDATABASE"], args)),
            **(extra_env or {}),
        }
        self.last_target = Path(env["DBT_TARGET_PATH"])
        result = subprocess.run(
            [sys.executable, "-m", "orchestration.cli", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"`{' '.join(args)}` failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def dbt(self, *args: str, check: bool = True, timezone: str = BUILD_TIMEZONE) -> subprocess.CompletedProcess:
        return self.cli("dbt", *args, check=check, extra_env={"PGTZ": timezone})

    def generate(
        self, rows: int, days: float, projects: int, seed: int, *, end: str | None = None, extra: tuple[str, ...] = ()
    ) -> None:
        """Messy synthetic logs into this database's usage_logs (created if missing); `extra`: more generate flags."""
        args = ["generate", "--rows", str(rows), "--days", str(days), "--projects", str(projects), "--seed", str(seed)]
        self.cli(*args, "--messy", "--allow-external", *(["--end", end] if end else []), *extra)

    def build_models(self) -> subprocess.CompletedProcess:
        """`dbt build` without data and unit tests: seed, views, tables, function."""
        return self.dbt("build", "--exclude", "resource_type:test", "resource_type:unit_test")

    def now(self) -> dt.datetime:
        return self.query("select now() as now")[0]["now"]


@pytest.fixture(scope="session")
def server() -> database.Connection:
    # `make test` starts the server first; a lock keeps parallel workers of a bare `pytest -n`
    # from racing to initialise it.
    settings.EMBEDDED_DATA_DIR.mkdir(parents=True, exist_ok=True)
    with open(settings.EMBEDDED_DATA_DIR / ".start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return database.start_embedded()


def fresh_database(server: database.Connection, name: str) -> Db:
    admin = {**server.env, "PGDATABASE": "postgres"}
    with psycopg.connect(**database._kwargs(admin), autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}"')
    return Db(env={**server.env, "PGDATABASE": name})


@pytest.fixture(scope="session")
def make_db(server):
    def factory(name: str) -> Db:
        return fresh_database(server, name)

    return factory


def run_while_a_table_is_locked(db: Db, name: str) -> subprocess.CompletedProcess:
    """`dbt run` while another session holds analytics.NAME's build lock: that model gives up after 2 s."""
    holder = psycopg.connect(**database._kwargs(db.env), autocommit=True)
    try:
        holder.execute("select pg_advisory_lock(hashtext(%s))", (f"watchllm_analytics.analytics.{name}",))
        return db.dbt("run", "--vars", '{lock_wait_timeout: "2s"}', check=False)
    finally:
        holder.close()


def raw_rows(db: Db, extra: tuple[str, ...] = ()) -> list[dict]:
    """usage_logs as the reference reads it; `extra`: optional columns the table has (sections 14, 15)."""
    return db.query(
        "select id, project_id, created_at, provider, model, tokens_input, tokens_output, cost_usd,"
        " potential_cost_usd, cached, latency_ms" + "".join(f", {c}" for c in extra) + " from public.usage_logs"
    )


ATTRIBUTION_COLUMNS = ("api_key_id", "end_user", "tags", "status_code")


def insert_rows(db: Db, rows: list[dict]) -> None:
    columns = (
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
    with db.connect() as conn, conn.cursor() as cur:
        cur.executemany(
            f"insert into public.usage_logs ({', '.join(columns)}) values ({', '.join(['%s'] * len(columns))})",
            [tuple(row.get(c) for c in columns) for row in rows],
        )


def request(project_id, created_at, **overrides) -> dict:
    """A plain, valid, non-cached gpt-4o-mini request; override any column."""
    row = {
        "id": uuid.uuid4(),
        "project_id": project_id,
        "created_at": created_at,
        "provider": "openai",
        "model": "gpt-4o-mini",
        "tokens_input": 1000,
        "tokens_output": 500,
        "cost_usd": Decimal("0.00045"),
        "potential_cost_usd": Decimal("0.00045"),
        "cached": False,
        "latency_ms": 800,
    }
    row.update(overrides)
    return row


def utc(value):
    """Datetimes as UTC: Python compares aware datetimes in a DST fold unequal across zones (PEP 495)."""
    return value.astimezone(dt.UTC) if isinstance(value, dt.datetime) else value


def table(db: Db, name: str, keys: tuple[str, ...]) -> dict[tuple, dict]:
    rows = db.query(f"select * from analytics.{name}")
    return {tuple(utc(r[k]) for k in keys): {c: v for c, v in r.items() if c not in keys} for r in rows}


def assert_tables_equal(actual: dict, expected: dict, what: str) -> None:
    missing = set(expected) - set(actual)
    extra = set(actual) - set(expected)
    assert not missing, f"{what}: {len(missing)} buckets missing, e.g. {sorted(missing, key=str)[:3]}"
    assert not extra, f"{what}: {len(extra)} unexpected buckets, e.g. {sorted(extra, key=str)[:3]}"
    for key, expected_row in expected.items():
        assert_row_matches(actual[key], expected_row, f"{what} {key}")


def assert_row_matches(actual: dict, expected: dict, what: str) -> None:
    """Every column equal to the reference; latency percentiles within the sketch's bound of the exact ones."""
    from reference import PERCENTILE_COLUMNS, within_sketch_bound

    for column, value in expected.items():
        if column in PERCENTILE_COLUMNS:
            assert within_sketch_bound(actual[column], value), (
                f"{what} {column}: sketch {actual[column]!r} is not within max(1 ms, 1%) of exact {value!r}"
            )
        else:
            assert actual[column] == value, f"{what} {column}: pipeline {actual[column]!r} != reference {value!r}"


def row_matches(actual: dict, expected: dict) -> bool:
    try:
        assert_row_matches(actual, expected, "")
    except AssertionError:
        return False
    return True


def assert_dashboard_matches(actual: list[dict], expected: list[dict], what: str) -> None:
    assert [row["date"] for row in actual] == [row["date"] for row in expected], what
    for actual_row, expected_row in zip(actual, expected, strict=True):
        assert set(actual_row) == set(expected_row), (what, set(actual_row) ^ set(expected_row))
    for actual_row, expected_row in zip(actual, expected, strict=True):
        assert_row_matches(actual_row, expected_row, f"{what} {expected_row['date']}")


def write_tripled_price_seed(path, change_day: dt.date) -> None:
    """The seed with gpt-4o-mini's current period ended at `change_day` and a new one at 3x the
    price from that day (a price change inside the data), written to `path`."""
    with SEED.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames, list(reader)
    edited, found = [], False
    for row in rows:
        if row["provider"] == "openai" and row["model"] == "gpt-4o-mini" and not row["valid_to"]:
            found = True
            edited.append({**row, "valid_to": change_day.isoformat()})
            tripled = {c: str(Decimal(row[c]) * 3) for c in ("input_usd_per_1m", "output_usd_per_1m")}
            edited.append({**row, "valid_from": change_day.isoformat(), **tripled})
        else:
            edited.append(row)
    assert found
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(edited)


def load_price_seed(db: Db, path) -> None:
    """The price list in `path` into analytics.model_pricing, as `dbt seed` of that file would."""
    with path.open(newline="") as handle:
        fields = next(csv.reader(handle))
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("truncate analytics.model_pricing")
        with cur.copy(
            f"copy analytics.model_pricing ({', '.join(fields)}) from stdin with (format csv, header)"
        ) as copy:
            copy.write(path.read_bytes())


# Every contract table: its grain, and the attribute of reference.Reference that holds its rows.
# The tables `spark publish` replaces in Postgres, with the columns that name one row.
SPARK_PUBLISHED_KEYS = {
    "int_usage_hourly_by_model": ("project_id", "hour_start", "provider", "model", "service_tier", "prompt_band"),
    "usage_aggregations_hourly": ("project_id", "hour_start"),
    "usage_by_model_daily": ("project_id", "date", "provider", "model"),
    "usage_aggregations_daily": ("project_id", "date"),
    "int_usage_daily_by_tier_and_band": ("project_id", "date", "service_tier", "prompt_band"),
    "project_savings_monthly": ("project_id", "month"),
    "model_cost_counterfactual_monthly": ("project_id", "month", "provider", "model"),
    "int_usage_hourly_by_dimension": ("project_id", "hour_start", "dimension", "value"),
    "usage_by_dimension_daily": ("project_id", "date", "dimension", "value"),
}
GRAINS = {
    "usage_aggregations_hourly": (("project_id", "hour_start"), "hourly"),
    "usage_aggregations_daily": (("project_id", "date"), "daily"),
    "usage_by_model_daily": (("project_id", "date", "provider", "model"), "by_model_daily"),
    "project_savings_monthly": (("project_id", "month"), "monthly"),
}


def assert_matches_raw(db: Db, raw: list[dict] | None = None) -> None:
    """Every contract table equals the reference computed from the raw rows (now, or as given)."""
    from reference import compute, load_prices

    reference = compute(raw if raw is not None else raw_rows(db), load_prices(SEED), db.now())
    for name, (keys, attribute) in GRAINS.items():
        assert_tables_equal(table(db, name, keys), getattr(reference, attribute), name)


def pytest_sessionfinish(session, exitstatus):
    """No tests collected is a failure, not a silent pass (pytest's exit code 5)."""
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# The longest test files first (by their --durations sums on 2 cores): with one file per
# worker (`--dist loadfile --no-loadscope-reorder`), a long file that starts last holds up the run.
LONGEST_FILES_FIRST = ("test_spark.py", "test_bench_smoke.py", "test_incremental.py", "test_faults.py")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        name = item.path.name
        return LONGEST_FILES_FIRST.index(name) if name in LONGEST_FILES_FIRST else len(LONGEST_FILES_FIRST)

    items.sort(key=rank)  # stable: the rest keep their collection order
