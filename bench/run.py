"""`make bench`: the pipeline against its baselines, side by side in one run on one database server.

Scenarios, at two lengths of history with the same traffic per hour (flags --small/--small-days
and --large/--days, default 1M rows over 3 days and 10M rows over 30 days, 1000 skewed projects,
made by the project's own generator), so that "the scheduled build costs what the new hour costs,
not what history costs" is measured directly:

1. dashboard read: get_dashboard_stats(project, 30) for the busiest and a median project, called
   as Supabase's `authenticated` role by the project's user (row level security on usage_logs and
   every aggregate), p50/p95 over --calls calls, against the guide's raw-scan GROUP BY over
   usage_logs; also in the project's own zone, in a zone it does not report in (30 and 366 days),
   and by a user who may not see the project;
2. scheduled build: append one hour at that rate, then run exactly the README's cron command
   (`.venv/bin/dbt build --quiet`, a whole process: wall time, and the models' and the tests'
   time separately), against the full build and the floor (a bare GROUP BY of the lookback
   window's rows into hourly buckets); the latency sketches' share, against the same hours on a
   twin database built without them; also the deep check
   (`watchllm-analytics deep-check`, a whole process) and one Dagster hourly tick (the
   hourly_usage job's newest partition, in-process);
3. full build: the first build of all history against the floor (one CREATE TABLE AS
   single-pass GROUP BY of all rows into hourly buckets, same session work_mem as the models),
   and the twin's full build without latency sketches;
4. backfill: a 30-day range rebuild with the vars Dagster's single-run backfill passes, after a
   vacuum analyze of the built tables (autovacuum's work on them stays out of its timing);
5. the guide's own design: aggregate_usage_hourly() per active project for one hour against one
   incremental build of that hour, and insert throughput with its per-row trigger;
6. memory: peak resident memory of the runner and of dbt, and the Postgres settings used;
7. the forecast's backtest (below);
8. alerts at scale: `alerts check` at --alert-projects projects (default 10,000), each with a new
   unpriced model, delivered to a local webhook and SMTP server (one digest per project, one SMTP
   session per check);
9. token classes (the long history only): the same rows generated with `--token-classes` (about
   40% of requests reading from the provider's prompt cache) against a copy without the columns,
   each fully built, then the same scheduled hours and dashboard calls on both, alternated;
10. who spent it (the long history only): the same rows generated with `--attribution` (2,000
   keys, 100,000 end users, 50 tags, 3% errors) against the copy without the columns: the same
   scheduled hours on both (the cron command, alternated), the size of the key, end-user and tag
   tables, and get_usage_breakdown for the busiest project over 30 days as `authenticated`.

Beside the targets, figures that explain the missed ones: per-model times of every build; a
contract-grain floor (the same single pass at project, hour, provider and model with the models'
sums, no cleaning or pricing); and the one pass of int_usage_hourly_by_model over the guide's
hour as a single statement.

Every timing is a median of repetitions and reported as a ratio against a baseline measured in
the same run. "Model time" is the models' execution_time from dbt's run_results.json (dbt's own
per-model work included); "statement time" sums the SQL statements dbt logged (database only).
Writes bench/results/latest.{json,md} and bench/results/latest.png.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestration import settings  # noqa: E402
from orchestration.core import database  # noqa: E402
from orchestration.defs.partitions import rebuild_vars  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
# dbt's artefacts of bench runs stay apart from the project's (a test run may share the checkout)
DBT_TARGET = BENCH_DIR / ".dbt" / "target"
DBT_LOG = BENCH_DIR / ".dbt" / "logs" / "dbt.log"
# every table model of the project: a full build's model time is theirs together
MODELS = ("int_usage_hourly_by_model", "usage_aggregations_hourly", "usage_aggregations_daily",
          "usage_by_model_daily", "project_savings_monthly", "model_cost_counterfactual_monthly",
          "project_cost_forecast", "usage_aggregations_local_daily", "int_usage_hourly_by_dimension",
          "usage_by_dimension_daily")
# the attribution scenario's traffic (issue: 2,000 keys, 100,000 end users, 50 tags, 3% errors)
ATTRIBUTION_ARGS = ("--attribution", "--keys", "2000", "--end-users", "100000", "--tags", "50", "--error-rate", "0.03")
WITH_SKETCHES, WITHOUT_SKETCHES = "{latency_sketches: true}", "{latency_sketches: false}"
BUILD_WORK_MEM = "512MB"  # the dbt_project.yml default of var build_work_mem, used for the floors too

# The guide's "before" query: what the dashboard did without aggregates.
RAW_SCAN = """
select date(created_at) as date, count(*) as requests, count(*) filter (where cached) as cached,
       sum(tokens_input + tokens_output) as tokens, sum(cost_usd) as cost,
       sum(potential_cost_usd) as potential, avg(latency_ms) as latency
from public.usage_logs
where project_id = %s and created_at >= now() - interval '30 days'
group by date(created_at)
"""
FLOOR = """
create temporary table floor_hourly as
select project_id, date_bin('1 hour', created_at, timestamptz '2000-01-01 00:00+00') as hour_start,
       count(*) as requests, sum(tokens_input) as tokens_input, sum(tokens_output) as tokens_output,
       sum(cost_usd) as cost_usd
from public.usage_logs
where created_at >= %s
group by 1, 2
"""
# Not an issue target: the same single pass at the finest grain the contract's outputs need
# (usage_by_model_daily and the per-hour model maps need provider and model per hour), with the
# sums the models keep, and no cleaning or pricing. It shows how much of a build's distance from
# FLOOR is the grain the contract asks for and how much is the models' own work.
FLOOR_CONTRACT_GRAIN = """
create temporary table floor_hourly as
select project_id, date_bin('1 hour', created_at, timestamptz '2000-01-01 00:00+00') as hour_start,
       provider, model, count(*) as requests, count(*) filter (where cached) as cached_requests,
       sum(tokens_input) as tokens_input, sum(tokens_output) as tokens_output, sum(cost_usd) as cost_usd,
       sum(potential_cost_usd) as potential_cost_usd, sum(latency_ms) as latency_sum_ms,
       count(latency_ms) as latency_count
from public.usage_logs
where created_at >= %s
group by 1, 2, 3, 4
"""


def log(message: str) -> None:
    print(f"[bench {dt.datetime.now():%H:%M:%S}] {message}", flush=True)


def clone_database(server: database.Connection, source: str, name: str) -> dict[str, str]:
    """A file copy of database `source` (nobody may be connected to it) as `name`."""
    admin = {**server.env, "PGDATABASE": "postgres"}
    with psycopg.connect(**database._kwargs(admin), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {} template {} strategy file_copy").format(
            sql.Identifier(name), sql.Identifier(source)))
    return {**server.env, "PGDATABASE": name}


def drop_database(server: database.Connection, name: str) -> None:
    admin = {**server.env, "PGDATABASE": "postgres"}
    with psycopg.connect(**database._kwargs(admin), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def fresh_database(server: database.Connection, name: str) -> dict[str, str]:
    admin = {**server.env, "PGDATABASE": "postgres"}
    with psycopg.connect(**database._kwargs(admin), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return {**server.env, "PGDATABASE": name}


class Run:
    """One size of the benchmark: a database and the CLI/dbt invocations against it."""

    def __init__(self, env: dict[str, str]):
        self.env = {**env, "DBT_LOG_PATH": str(DBT_LOG.parent)}

    def cli(self, *args: str, extra_env: dict[str, str] | None = None) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "orchestration.cli", *args], cwd=settings.PROJECT_DIR,
                       env={**os.environ, **self.env, **(extra_env or {})}, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started

    def cron_build(self, vars_json: str | None = None) -> dict[str, float]:
        """The README's cron line, as a whole process: `.venv/bin/dbt build --quiet` from the repo root
        (with `vars_json`, the same command with --vars, in a target directory of its own)."""
        target = DBT_TARGET / f"{self.env['PGDATABASE']}-{'plain' if vars_json is None else 'cron-vars'}"
        offset = DBT_LOG.stat().st_size if DBT_LOG.exists() else 0
        started = time.perf_counter()
        extra = [] if vars_json is None else ["--vars", vars_json]
        subprocess.run([str(settings.PROJECT_DIR / ".venv" / "bin" / "dbt"), "build", "--quiet", *extra],
                       cwd=settings.PROJECT_DIR, env={**os.environ, **self.env, "DBT_TARGET_PATH": str(target)},
                       check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        results = json.loads((target / "run_results.json").read_text())["results"]
        models = sum(r["execution_time"] for r in results if r["unique_id"].startswith("model."))
        tests = sum(r["execution_time"] for r in results if r["unique_id"].startswith(("test.", "unit_test.")))
        slowest = max((r for r in results if r["unique_id"].startswith("test.")),
                      key=lambda r: r["execution_time"], default=None)
        with DBT_LOG.open(encoding="utf-8", errors="replace") as handle:
            handle.seek(offset)
            statement_s = sum(float(m) for m in re.findall(r"SQL status: .*? in (\d+\.\d+) seconds", handle.read()))
        per_model = {r["unique_id"].split(".")[-1]: r["execution_time"] for r in results}
        return {"wall_s": wall, "models_s": models, "tests_s": tests, "statement_s": statement_s,
                "per_model_s": {name: per_model.get(name, 0.0) for name in MODELS},
                "slowest_test_s": slowest["execution_time"] if slowest else 0.0,
                "slowest_test": slowest["unique_id"].split(".")[2] if slowest else ""}

    def dbt(self, *args: str) -> dict[str, float]:
        """Run dbt; its wall time, the models' execution_time (in all and per model) and the logged
        statement time.

        Runs with and without --vars keep separate target directories: dbt re-parses the whole
        project when the vars differ from the previous run's; a scheduled build (no vars) starts from
        the parse the previous one saved, as consecutive hourly builds do, not after the backfill's.
        """
        target = DBT_TARGET / f"{self.env['PGDATABASE']}-{'vars' if '--vars' in args else 'plain'}"
        offset = DBT_LOG.stat().st_size if DBT_LOG.exists() else 0
        wall = self.cli("dbt", *args, extra_env={"DBT_TARGET_PATH": str(target)})
        results = json.loads((target / "run_results.json").read_text())
        per_model = {r["unique_id"].split(".")[-1]: r["execution_time"] for r in results["results"]}
        per_model = {name: seconds for name, seconds in per_model.items() if name in MODELS}
        with DBT_LOG.open(encoding="utf-8", errors="replace") as handle:
            handle.seek(offset)
            statement_s = sum(float(m) for m in re.findall(r"SQL status: .*? in (\d+\.\d+) seconds", handle.read()))
        return {"wall_s": wall, "model_s": sum(per_model.values()), "statement_s": statement_s,
                **{f"{name}_s": seconds for name, seconds in per_model.items()}}

    def compiled(self, model: str, vars_json: str) -> str:
        """The SQL dbt compiles for `model` with `vars_json` (the SELECT its build runs)."""
        target = DBT_TARGET / f"{self.env['PGDATABASE']}-compile"
        self.cli("dbt", "compile", "--select", model, "--vars", vars_json, extra_env={"DBT_TARGET_PATH": str(target)})
        return next((target / "compiled").rglob(f"{model}.sql")).read_text()

    def generate(self, rows: int, days: float, projects: int, seed: int, end: dt.datetime,
                 token_classes: bool = False, attribution: bool = False) -> float:
        return self.cli("generate", "--rows", str(rows), "--days", str(days), "--projects", str(projects),
                        "--seed", str(seed), "--end", end.isoformat(), "--allow-external",
                        *(["--token-classes"] if token_classes else []),
                        *(ATTRIBUTION_ARGS if attribution else ()))

    def connect(self) -> psycopg.Connection:
        conn = psycopg.connect(**database._kwargs(self.env), autocommit=True)
        conn.execute("set timezone = 'UTC'")
        return conn


def floor_seconds(conn: psycopg.Connection, since: dt.datetime, repeat: int, query: str = FLOOR) -> float:
    conn.execute(f"set work_mem = '{BUILD_WORK_MEM}'")
    samples = []
    for _ in range(repeat):
        conn.execute("drop table if exists floor_hourly")
        started = time.perf_counter()
        conn.execute(query, (since,))
        samples.append(time.perf_counter() - started)
    conn.execute("drop table if exists floor_hourly")
    conn.execute("reset work_mem")
    return statistics.median(samples)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def configure_reporting_zones(conn: psycopg.Connection, ranked: list) -> None:
    """A tenth of the projects report in Asia/Kathmandu (project_settings), the busiest and the median
    one among them: their closed local days are stored (usage_aggregations_local_daily) from the
    first build on, as a project that sets its zone has them after one `rebuild`."""
    chosen = {ranked[0], ranked[len(ranked) // 2], *ranked[9::10]}
    conn.execute("create schema if not exists analytics")
    conn.execute("create table if not exists analytics.project_settings"
                 " (project_id uuid primary key, time_zone text not null default 'UTC')")
    with conn.cursor() as cursor:
        cursor.executemany("insert into analytics.project_settings (project_id, time_zone) values (%s, %s)"
                           " on conflict do nothing", [(project, "Asia/Kathmandu") for project in chosen])


# What a Supabase database has around the proxy's table: the API roles, auth.uid() from the request's
# JWT, a projects table, and the proxy's own policy on usage_logs. The build then puts the tenant
# policies on every aggregate (tenant_policies: auto), and the dashboard is measured as
# `authenticated`, with row level security on every table it reads.
SUPABASE_LIKE = """
do $$ begin
    if not exists (select 1 from pg_roles where rolname = 'anon') then create role anon nologin; end if;
    if not exists (select 1 from pg_roles where rolname = 'authenticated') then
        create role authenticated nologin;
    end if;
end $$;
create schema if not exists auth;
create or replace function auth.uid() returns uuid language sql stable
    as $$ select nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
grant usage on schema auth to anon, authenticated;
create table if not exists public.projects (id uuid primary key, user_id uuid not null);
create table if not exists public.project_members (project_id uuid not null, user_id uuid not null);
-- every project is owned by a user whose id is the project's own
insert into public.projects
select distinct project_id, project_id from public.usage_logs where project_id is not null on conflict do nothing;
alter table public.projects enable row level security;
alter table public.project_members enable row level security;
alter table public.usage_logs enable row level security;
create policy member_read on public.usage_logs for select to authenticated using (
    project_id in (select id from public.projects where user_id = auth.uid()
                   union all select project_id from public.project_members where user_id = auth.uid()));
create policy own_read on public.projects for select to authenticated using (user_id = auth.uid());
create policy own_read on public.project_members for select to authenticated using (user_id = auth.uid());
grant usage on schema public to anon, authenticated;
grant select on public.usage_logs, public.projects, public.project_members to authenticated;
"""


def as_user(env: dict[str, str], user) -> psycopg.Connection:
    """A connection as Supabase's `authenticated` role for the signed-in user `user`."""
    conn = psycopg.connect(**database._kwargs(env), autocommit=True)
    conn.execute("set role authenticated")
    conn.execute("select set_config('request.jwt.claim.sub', %s, false)", (str(user),))
    return conn


def timed_calls(conn, query: str, args, calls: int) -> list[float]:
    conn.execute(query, args).fetchall()  # warm: the session's plans
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        conn.execute(query, args).fetchall()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def dashboard(env: dict[str, str], calls: int, projects: list) -> dict[str, float]:
    """The busiest and the median project by requests (both report in Asia/Kathmandu), each called by
    its own user as `authenticated`, as Supabase's RPC layer calls it; the raw scan as the owner."""
    out = {}
    owner = psycopg.connect(**database._kwargs(env), autocommit=True)
    call = "select * from public.get_dashboard_stats(%s, %s, %s)"
    for label, project in (("busiest", projects[0]), ("median", projects[len(projects) // 2])):
        user = as_user(env, project)
        # a zone the project does not report in, 366 days (the worst case a caller can ask for)
        out[f"dashboard_{label}_366d_unstored_zone_p95_ms"] = percentile(
            timed_calls(user, call, (project, 366, "Asia/Kolkata"), 3), 0.95)
        # a caller who may not see the project: row level security leaves it nothing to read
        stranger = as_user(env, projects[-1] if project != projects[-1] else projects[0])
        out[f"dashboard_{label}_366d_unstored_zone_other_tenant_p95_ms"] = percentile(
            timed_calls(stranger, call, (project, 366, "Asia/Kolkata"), 3), 0.95)
        stranger.close()
        conn = user  # the calls below are the signed-in user's
        # the UTC call and the same 30 days in Asia/Kathmandu (+05:45: a local midnight splits a UTC hour),
        # alternated so that both see the same machine
        for zone in ("UTC", "Asia/Kathmandu"):
            conn.execute("select * from public.get_dashboard_stats(%s, 30, %s)", (project, zone)).fetchall()  # warm
        by_zone: dict[str, list[float]] = {"UTC": [], "Asia/Kathmandu": []}
        for _ in range(calls):
            for zone, samples in by_zone.items():
                started = time.perf_counter()
                conn.execute("select * from public.get_dashboard_stats(%s, 30, %s)", (project, zone)).fetchall()
                samples.append((time.perf_counter() - started) * 1000)
        latencies = by_zone["UTC"]
        out[f"dashboard_{label}_kathmandu_p50_ms"] = percentile(by_zone["Asia/Kathmandu"], 0.5)
        out[f"dashboard_{label}_kathmandu_p95_ms"] = percentile(by_zone["Asia/Kathmandu"], 0.95)
        # a zone the project does not report in: its local days are added up on every call
        unstored = []
        conn.execute("select * from public.get_dashboard_stats(%s, 30, 'Asia/Kolkata')", (project,)).fetchall()  # warm
        for _ in range(max(3, calls // 20)):
            started = time.perf_counter()
            conn.execute("select * from public.get_dashboard_stats(%s, 30, 'Asia/Kolkata')", (project,)).fetchall()
            unstored.append((time.perf_counter() - started) * 1000)
        out[f"dashboard_{label}_unstored_zone_p95_ms"] = percentile(unstored, 0.95)
        raw = []
        for _ in range(5):  # the guide's query over the raw log, as the owner (no row level security)
            started = time.perf_counter()
            owner.execute(RAW_SCAN, (project,)).fetchall()
            raw.append((time.perf_counter() - started) * 1000)
        user.close()
        out[f"dashboard_{label}_p50_ms"] = percentile(latencies, 0.5)
        out[f"dashboard_{label}_p95_ms"] = percentile(latencies, 0.95)
        out[f"raw_scan_{label}_median_ms"] = statistics.median(raw)
    owner.close()
    return out


def incremental(run: Run, twin: Run, conn, rows: int, days: int, projects: int, end: dt.datetime,
                repeat: int) -> dict:
    """Append one hour at the generator's rate, then the cron command (`dbt build`), `repeat` times.

    What the latency sketches cost a scheduled build, like for like: `twin` is a copy of the
    database built from the start without sketches (var latency_sketches: false); it gets the same
    hour and the same cron command (with that var), in turned order hour by hour (so that neither
    is always the one that meets the autovacuum the build before set off). The ratio of the medians
    of their model times is the sketches' share. (Re-running a window does not measure it: the
    pass finds the rows it rebuilt unchanged and the marts rebuild nothing.)
    """
    per_hour = max(1, rows // (days * 24))
    # Both databases from the same state: vacuumed and analysed (the backfill rewrote the bench
    # database's tables, the twin's were just built), and one hour built untimed (it takes up what
    # the backfill or the first build left pending).
    for side in (run, twin):
        with side.connect() as side_conn:
            side_conn.execute(sql.SQL("vacuum (analyze) {}").format(
                sql.SQL(", ").join(sql.Identifier("analytics", name) for name in MODELS)))
        side.generate(per_hour, 1 / 24, projects, 99, end + dt.timedelta(hours=1))
    run.cron_build()
    twin.cron_build(WITHOUT_SKETCHES)
    samples, without_sketches = [], []
    for i in range(repeat):
        hour_end = end + dt.timedelta(hours=i + 2)
        run.generate(per_hour, 1 / 24, projects, 100 + i, hour_end)
        twin.generate(per_hour, 1 / 24, projects, 100 + i, hour_end)
        for sketches in ((True, False) if i % 2 == 0 else (False, True)):
            if sketches:
                timing = run.cron_build()  # exactly the README's cron command
            else:
                without_sketches.append(twin.cron_build(WITHOUT_SKETCHES))
        newest = conn.execute("select max(hour_start) from analytics.int_usage_hourly_by_model").fetchone()[0]
        window = newest - dt.timedelta(hours=settings.lookback_hours())
        timing["floor_s"] = floor_seconds(conn, window, repeat=3)
        timing["contract_grain_floor_s"] = floor_seconds(conn, window, repeat=3, query=FLOOR_CONTRACT_GRAIN)
        samples.append(timing)
    numeric = [k for k, v in samples[0].items() if isinstance(v, (int, float))]
    out = {"rows_per_hour": per_hour, "incremental_slowest_test": samples[-1]["slowest_test"],
           **{f"incremental_{k}": statistics.median(s[k] for s in samples) for k in numeric}}
    for label, runs in (("with", samples), ("without", without_sketches)):
        out[f"incremental_{label}_sketches_model_s"] = statistics.median(r["models_s"] for r in runs)
        for name in MODELS:
            per_model = (r["per_model_s"][name] for r in runs)
            out[f"incremental_{label}_sketches_{name}_s"] = statistics.median(per_model)
    return out


def alerts_check(run: Run) -> dict:
    """`alerts check` as cron runs it after `dbt build` (whole process): the first check records the
    firings (delivery fails fast: nothing listens on port 9), later ones find them open; median of 3."""
    env = {"WATCHLLM_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/bench", "WATCHLLM_ALERT_TIMEOUT_SECONDS": "1"}
    first = run.cli("alerts", "check", extra_env=env)
    later = [run.cli("alerts", "check", extra_env=env) for _ in range(3)]
    return {"alerts_check_first_s": first, "alerts_check_s": statistics.median(later)}


def deep_check_and_dagster_tick(run: Run) -> dict:
    """The deep check as its cron line runs it, and one hourly Dagster tick in-process."""
    wall = run.cli("deep-check")
    tick = subprocess.run([sys.executable, "-c", DAGSTER_TICK], cwd=settings.PROJECT_DIR,
                          env={**os.environ, **run.env}, check=True, capture_output=True, text=True)
    return {"deep_check_wall_s": wall, "dagster_hourly_tick_s": float(tick.stdout.strip().splitlines()[-1])}


# One tick of the hourly schedule: the hourly_usage job for the hour that just closed, in-process.
DAGSTER_TICK = """
import datetime as dt, time
from orchestration.definitions import defs
from orchestration.defs.partitions import hourly_partitions
job = defs.resolve_job_def("hourly_usage")
key = hourly_partitions.get_last_partition_key()
started = time.perf_counter()
assert job.execute_in_process(partition_key=key).success
print(time.perf_counter() - started)
"""


def backfill(run: Run, end: dt.datetime, days: int, repeat: int) -> dict:
    """A `days`-day range rebuild with the vars the Dagster single-run backfill passes to dbt."""
    from dagster import TimeWindow

    start = end - dt.timedelta(days=days)
    vars_json = rebuild_vars(TimeWindow(start, end + dt.timedelta(hours=1)))
    samples = [run.dbt("run", "--vars", vars_json) for _ in range(repeat)]
    return {f"backfill_{k}": statistics.median(s[k] for s in samples) for k in samples[0]}


def guide_design(run: Run, conn, trigger_rows: int) -> dict:
    """Scenario 5: the guide's per-project function loop and its per-row trigger."""
    template = (BENCH_DIR / "guide_design.sql").read_text()
    conn.execute(template.format(schema="guide", logs="public.usage_logs"))
    hour = conn.execute("select max(hour_start) from analytics.int_usage_hourly_by_model").fetchone()[0]
    projects = [r[0] for r in conn.execute(
        "select distinct project_id from public.usage_logs where created_at >= %s - interval '30 days'"
        " and project_id is not null", (hour,))]
    loop = []
    for _ in range(3):
        started = time.perf_counter()
        with conn.transaction():
            for project in projects:
                conn.execute("select guide.aggregate_usage_hourly(%s, %s)", (project, hour))
        loop.append(time.perf_counter() - started)
    single = []
    for _ in range(3):
        started = time.perf_counter()
        conn.execute("select count(guide.aggregate_usage_hourly(p, %s)) from unnest(%s::uuid[]) as p",
                     (hour, projects))
        single.append(time.perf_counter() - started)

    # Not the target (that is the whole scheduled build), its explanation: the one pass of
    # int_usage_hourly_by_model over the same single hour, as one statement, as dbt compiles it for
    # a range rebuild of that hour (cleaning and pricing included, no marts, no lookback).
    from dagster import TimeWindow

    one_hour = run.compiled("int_usage_hourly_by_model", rebuild_vars(TimeWindow(hour, hour + dt.timedelta(hours=1))))
    conn.execute(f"set work_mem = '{BUILD_WORK_MEM}'")
    ours = []
    for _ in range(3):
        conn.execute("drop table if exists ours_one_hour")
        started = time.perf_counter()
        conn.execute(sql.SQL("create temporary table ours_one_hour as {}").format(sql.SQL(one_hour)))
        ours.append(time.perf_counter() - started)
    conn.execute("drop table ours_one_hour")
    conn.execute("reset work_mem")

    # Insert throughput: the same rows into a copy of usage_logs, with and without the trigger.
    conn.execute("drop schema if exists guide_ingest cascade")
    conn.execute(template.format(schema="guide_ingest", logs="guide_ingest.usage_logs"))
    conn.execute("create table guide_ingest.usage_logs (like public.usage_logs including all)")
    conn.execute("create index on guide_ingest.usage_logs (project_id, created_at)")
    conn.execute("create table guide_ingest.source as select row_number() over (order by created_at) as rn, *"
                 " from (select * from public.usage_logs where project_id is not null and created_at is not null"
                 " order by created_at desc limit %s) as newest", (trigger_rows,))
    columns = sql.SQL(", ").join(sql.Identifier(r[0]) for r in conn.execute(
        "select column_name from information_schema.columns where table_schema = 'public'"
        " and table_name = 'usage_logs' order by ordinal_position"))
    batch = 1000  # the proxy inserts in small batches

    def insert_all() -> float:
        conn.execute("truncate guide_ingest.usage_logs, guide_ingest.usage_aggregations_hourly")
        started = time.perf_counter()
        for first in range(1, trigger_rows + 1, batch):
            conn.execute(sql.SQL("insert into guide_ingest.usage_logs ({c}) select {c} from guide_ingest.source"
                                 " where rn >= %s and rn < %s").format(c=columns), (first, first + batch))
        return time.perf_counter() - started

    plain = insert_all()
    conn.execute("create trigger update_aggregations_on_insert after insert on guide_ingest.usage_logs"
                 " for each row execute function guide_ingest.trigger_update_aggregations()")
    with_trigger = insert_all()
    conn.execute("drop schema guide_ingest cascade")
    return {"guide_projects": len(projects), "guide_loop_s": statistics.median(loop),
            "guide_single_statement_s": statistics.median(single), "guide_hour": hour.isoformat(),
            "ours_one_hour_statement_s": statistics.median(ours),
            "trigger_rows": trigger_rows, "insert_plain_rows_per_s": trigger_rows / plain,
            "insert_trigger_rows_per_s": trigger_rows / with_trigger}


def run_size(server, rows: int, days: int, args: argparse.Namespace) -> dict:
    log(f"{rows:,} rows over {days} days: generating")
    run = Run(fresh_database(server, f"wl_bench_{rows}_{days}d"))
    # room for the scheduled scenario's hours (one untimed, `repeat` timed) before now
    end = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=args.repeat + 2)
    out: dict = {"rows": rows, "days": days, "generate_s": run.generate(rows, days, args.projects, 1, end)}
    ranked = prepare_generated(run)
    # a copy of the generated rows, for the token classes' comparison at the end (the long history only)
    plain = (Run(clone_database(server, run.env["PGDATABASE"], f"{run.env['PGDATABASE']}_plain"))
             if rows == args.large else None)
    # The twin: a copy of the same rows, built and kept without the latency sketches (var
    # latency_sketches: false): what the percentiles add to the full build and to scheduled builds.
    log(f"{rows:,} rows: full build of a copy without latency sketches (the percentiles' baseline)")
    twin = Run(clone_database(server, run.env["PGDATABASE"], f"{run.env['PGDATABASE']}_without_sketches"))
    baseline = twin.dbt("build", "--exclude", "resource_type:test", "resource_type:unit_test",
                        "--vars", WITHOUT_SKETCHES)
    out["full_build_without_sketches_model_s"] = baseline["model_s"]
    log(f"{rows:,} rows: full build")
    full = run.dbt("build", "--exclude", "resource_type:test", "resource_type:unit_test")
    out.update({f"full_build_{k}": v for k, v in full.items()})
    with run.connect() as conn:
        everything = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
        out["floor_full_s"] = floor_seconds(conn, everything, repeat=2 if rows >= 5_000_000 else 3)
        out["contract_grain_floor_full_s"] = floor_seconds(conn, everything, repeat=2 if rows >= 5_000_000 else 3,
                                                           query=FLOOR_CONTRACT_GRAIN)
        # Autovacuum visits the freshly built tables within minutes (insert-triggered vacuum and
        # analyze of millions of rows); done here, it does not land inside the backfill's timing.
        conn.execute(sql.SQL("vacuum (analyze) {}").format(
            sql.SQL(", ").join(sql.Identifier("analytics", name) for name in MODELS)))
        log(f"{rows:,} rows: backfill of {days} days")
        out.update(backfill(run, end, days, repeat=1))
        log(f"{rows:,} rows: scheduled builds (the cron command), the deep check, a Dagster tick")
        out.update(incremental(run, twin, conn, rows, days, args.projects, end, args.repeat))
        drop_database(server, twin.env["PGDATABASE"])
        out.update(deep_check_and_dagster_tick(run))
        out.update(alerts_check(run))
        log(f"{rows:,} rows: the guide's function loop and trigger")
        out.update(guide_design(run, conn, args.trigger_rows))
        log(f"{rows:,} rows: dashboard reads")
        out.update(dashboard(run.env, args.calls, ranked))
        out["table_mib"] = conn.execute("select pg_total_relation_size('public.usage_logs') / 2.0^20").fetchone()[0]
        out.update(sketch_storage(conn))
    if plain is not None:
        log(f"{rows:,} rows: token classes (the same rows generated with the class columns)")
        out.update(token_classes(server, plain, rows, days, args, end))
        log(f"{rows:,} rows: who spent it (the same rows generated with keys, end users, tags and errors)")
        out.update(attribution(server, plain, rows, days, args, end))
        drop_database(server, plain.env["PGDATABASE"])
    return out


def prepare_generated(run: Run) -> list:
    """The generated table in the proxy's layout (time order), analysed, with reporting zones and
    Supabase's roles; the projects, busiest first."""
    with run.connect() as conn:
        # The proxy appends rows as requests happen, so its table is in time order; the generator
        # writes its chunks in parallel. CLUSTER gives the generated table the proxy's layout.
        conn.execute("set maintenance_work_mem = '1GB'")
        conn.execute("cluster public.usage_logs using usage_logs_created_at_idx")
        conn.execute("analyze public.usage_logs")
        ranked = [r[0] for r in conn.execute(
            "select project_id from public.usage_logs group by 1 order by count(*) desc, project_id")]
        configure_reporting_zones(conn, ranked)
        conn.execute(SUPABASE_LIKE)
    return ranked


def token_classes(server, plain: Run, rows: int, days: int, args: argparse.Namespace, end: dt.datetime) -> dict:
    """What the token classes cost (section 14): `plain` is a copy of the generated rows without the
    class columns; the twin has the same rows with them (the generator's class draws come after all
    the others). Both get a full build, then the same scheduled hours, each hour's cron command on
    both in turned order, then the busiest project's dashboard, calls alternated."""
    classes = Run(fresh_database(server, f"{plain.env['PGDATABASE']}_token_classes"))
    classes.generate(rows, days, args.projects, 1, end, token_classes=True)
    ranked = prepare_generated(classes)
    out: dict = {}
    log(f"{rows:,} rows: full builds with and without token classes")
    for label, side in (("without", plain), ("with", classes)):
        full = side.dbt("build", "--exclude", "resource_type:test", "resource_type:unit_test")
        out[f"token_classes_full_build_{label}_model_s"] = full["model_s"]
    per_hour = max(1, rows // (days * 24))
    for side in (plain, classes):
        with side.connect() as conn:
            conn.execute(sql.SQL("vacuum (analyze) {}").format(
                sql.SQL(", ").join(sql.Identifier("analytics", name) for name in MODELS)))
        side.generate(per_hour, 1 / 24, args.projects, 99, end + dt.timedelta(hours=1), token_classes=side is classes)
        side.cron_build()
    samples: dict[str, list[float]] = {"without": [], "with": []}
    for i in range(args.repeat):
        hour_end = end + dt.timedelta(hours=i + 2)
        plain.generate(per_hour, 1 / 24, args.projects, 100 + i, hour_end)
        classes.generate(per_hour, 1 / 24, args.projects, 100 + i, hour_end, token_classes=True)
        order = (("without", plain), ("with", classes)) if i % 2 == 0 else (("with", classes), ("without", plain))
        for label, side in order:
            samples[label].append(side.cron_build()["models_s"])
    for label, values in samples.items():
        out[f"token_classes_scheduled_{label}_models_s"] = statistics.median(values)
    busiest = ranked[0]
    call = "select * from public.get_dashboard_stats(%s, 30, 'UTC')"
    users = {label: as_user(side.env, busiest) for label, side in (("without", plain), ("with", classes))}
    latencies: dict[str, list[float]] = {"without": [], "with": []}
    for conn in users.values():
        conn.execute(call, (busiest,)).fetchall()  # warm
    for _ in range(args.calls):
        for label, conn in users.items():
            started = time.perf_counter()
            conn.execute(call, (busiest,)).fetchall()
            latencies[label].append((time.perf_counter() - started) * 1000)
    for label, conn in users.items():
        conn.close()
        out[f"token_classes_dashboard_{label}_p95_ms"] = percentile(latencies[label], 0.95)
        out[f"token_classes_dashboard_{label}_p50_ms"] = percentile(latencies[label], 0.5)
    drop_database(server, classes.env["PGDATABASE"])
    return out


def attribution(server, plain: Run, rows: int, days: float, args: argparse.Namespace, end: dt.datetime) -> dict:
    """What keys, end users, tags and errors cost (section 15). `plain` is the copy without the
    columns after token_classes() (fully built, its scheduled hours included); the twin gets the
    same rows with the columns (their draws come after all the others), then a full build. Then the
    same new rows on both, one scheduled build (the cron command) each, in turned order; then the
    busiest project's breakdown calls as `authenticated`."""
    twin = Run(fresh_database(server, f"{plain.env['PGDATABASE']}_attribution"))
    per_hour = max(1, rows // (days * 24))
    twin.generate(rows, days, args.projects, 1, end, attribution=True)
    twin.generate(per_hour, 1 / 24, args.projects, 99, end + dt.timedelta(hours=1), attribution=True)
    for i in range(args.repeat):  # the rows token_classes() appended to `plain`
        twin.generate(per_hour, 1 / 24, args.projects, 100 + i, end + dt.timedelta(hours=i + 2), attribution=True)
    ranked = prepare_generated(twin)
    out: dict = {}
    full = twin.dbt("build", "--exclude", "resource_type:test", "resource_type:unit_test")
    out["attribution_full_build_model_s"] = full["model_s"]
    with twin.connect() as conn:
        conn.execute(sql.SQL("vacuum (analyze) {}").format(
            sql.SQL(", ").join(sql.Identifier("analytics", name) for name in MODELS)))
    twin.cron_build()
    samples: dict[str, list[dict]] = {"without": [], "with": []}
    for i in range(args.repeat):
        # more rows into the newest hours (all before now): what a scheduled build finds
        hour_end = end + dt.timedelta(hours=i + 2)
        plain.generate(per_hour, 1 / 24, args.projects, 200 + i, hour_end)
        twin.generate(per_hour, 1 / 24, args.projects, 200 + i, hour_end, attribution=True)
        order = (("without", plain), ("with", twin)) if i % 2 == 0 else (("with", twin), ("without", plain))
        for label, side in order:
            samples[label].append(side.cron_build())
    for label, values in samples.items():
        for figure in ("wall_s", "models_s", "tests_s"):
            out[f"attribution_scheduled_{label}_{figure}"] = statistics.median(v[figure] for v in values)
    out["attribution_scheduled_dimension_models_s"] = statistics.median(
        v["per_model_s"]["int_usage_hourly_by_dimension"] + v["per_model_s"]["usage_by_dimension_daily"]
        for v in samples["with"]
    )
    with twin.connect() as conn:
        for name in ("int_usage_hourly_by_dimension", "usage_by_dimension_daily", "usage_by_model_daily"):
            size = conn.execute(
                sql.SQL("select pg_total_relation_size(%s) / 2.0^20, (select count(*) from {})").format(
                    sql.Identifier("analytics", name)), (f"analytics.{name}",)).fetchone()
            out[f"attribution_{name}_mib"], out[f"attribution_{name}_rows"] = float(size[0]), size[1]
        counts = conn.execute(
            "select dimension, count(distinct value) from analytics.usage_by_dimension_daily"
            " where project_id = %s and date >= current_date - 29 group by 1", (ranked[0],)).fetchall()
        for dimension, values in counts:
            out[f"attribution_busiest_30d_{dimension}_values"] = values
    busiest = ranked[0]
    user = as_user(twin.env, busiest)
    for dimension in ("api_key", "end_user", "tag"):
        call = f"select * from public.get_usage_breakdown(%s, '{dimension}', 30, 'UTC', 20)"
        user.execute(call, (busiest,)).fetchall()  # warm
        latencies = timed_calls(user, call, (busiest,), args.calls)
        out[f"attribution_breakdown_{dimension}_p95_ms"] = percentile(latencies, 0.95)
        out[f"attribution_breakdown_{dimension}_p50_ms"] = percentile(latencies, 0.5)
    user.close()
    drop_database(server, twin.env["PGDATABASE"])
    return out


def sketch_storage(conn) -> dict:
    """What the latency sketch adds: its share of each aggregate table's bytes."""
    out = {}
    for name in ("int_usage_hourly_by_model", "usage_aggregations_hourly", "usage_aggregations_daily",
                 "usage_by_model_daily"):
        table, sketch = conn.execute(
            sql.SQL("select pg_total_relation_size({t}::regclass), coalesce(sum(pg_column_size(latency_sketch)), 0)"
                    " from {i}").format(t=sql.Literal(f"analytics.{name}"), i=sql.Identifier("analytics", name))
        ).fetchone()
        out[f"{name}_mib"] = table / 2**20
        out[f"{name}_sketch_mib"] = float(sketch) / 2**20
    return out


def forecast_backtest(server, args: argparse.Namespace) -> dict:
    """Scenario 7: project_cost_forecast against the naive run rate on generated daily histories.

    Each project gets a daily cost with a known weekly cycle (weekends at 40-60%), a known trend
    (trending: +1.5% to +4% a day; flat: none) and multiplicative noise (+-10%), written straight into
    usage_aggregations_daily. The forecast model runs as of days 7, 14 and 21 of a month; each
    forecast is compared with the month's actual total: MAPE for the method and for the naive run
    rate (month to date x days in the month / days elapsed).
    """
    import random

    env = fresh_database(server, "wl_bench_forecast")
    run = Run(env)
    rng = random.Random(7)
    month = dt.date(2026, 9, 1)
    days = [month - dt.timedelta(days=60) + dt.timedelta(days=n) for n in range(60 + 30)]
    histories = {}
    for kind in ("trending", "flat"):
        for _ in range(args.backtest_projects):
            project = str(__import__("uuid").uuid4())
            base, growth = rng.uniform(5, 500), (rng.uniform(0.015, 0.04) if kind == "trending" else 0.0)
            weekend = rng.uniform(0.4, 0.6)
            cost = []
            for n, day in enumerate(days):
                weekly = weekend if day.weekday() >= 5 else 1.0
                cost.append(round(base * (1 + growth) ** n * weekly * rng.uniform(0.9, 1.1), 6))
            histories[project] = (kind, cost)
    with run.connect() as conn:
        conn.execute("create schema if not exists analytics")
        conn.execute("create table analytics.usage_aggregations_daily (project_id uuid, date date,"
                     " total_cost_usd numeric, total_savings_usd numeric, prompt_cache_savings_usd numeric)")
        with conn.cursor() as cur:
            rows = [(p, day, c) for p, (_, cost) in histories.items() for day, c in zip(days, cost, strict=True)]
            cur.executemany("insert into analytics.usage_aggregations_daily values (%s, %s, %s, 0, 0)", rows)
    actual = {
        p: sum(c for day, c in zip(days, cost, strict=True) if day >= month) for p, (_, cost) in histories.items()
    }
    errors: dict[str, list[float]] = {"trending": [], "flat": [], "trending_naive": [], "flat_naive": []}
    for day_of_month in (7, 14, 21):
        as_of = month + dt.timedelta(days=day_of_month - 1)
        target = DBT_TARGET / "wl_bench_forecast"
        run.cli("dbt", "run", "--select", "project_cost_forecast", "--vars", json.dumps({"forecast_as_of": str(as_of)}),
                extra_env={"DBT_TARGET_PATH": str(target)})
        with run.connect() as conn:
            for project, mtd, forecast in conn.execute(
                    "select project_id::text, month_to_date_cost_usd, forecast_cost_usd"
                    " from analytics.project_cost_forecast"):
                kind = histories[project][0]
                naive = float(mtd) * 30 / day_of_month
                errors[kind].append(abs(float(forecast) - actual[project]) / actual[project])
                errors[f"{kind}_naive"].append(abs(naive - actual[project]) / actual[project])
    return {f"forecast_mape_{k}": 100 * statistics.mean(v) for k, v in errors.items()}


ALERT_TRAFFIC = """
insert into public.usage_logs (id, project_id, created_at, provider, model, tokens_input, tokens_output,
    cost_usd, potential_cost_usd, cached, latency_ms)
select gen_random_uuid(), ('00000000-0000-0000-0000-' || lpad(to_hex(p), 12, '0'))::uuid,
    %(today)s::timestamptz - d * interval '1 day' + interval '3 hours',
    case when d = 1 then 'acme' else 'openai' end,
    case when d = 1 then 'acme-model-' || (p %% 97) else 'gpt-4o-mini' end,
    1000, 200, case when d = 1 then null else 0.00027 end, case when d = 1 then null else 0.00027 end,
    false, 300 + p %% 200
from generate_series(1, %(projects)s) as p, generate_series(1, 8) as d
"""


def alerts_at_scale(server, args: argparse.Namespace) -> dict:
    """Scenario 8: `alerts check` (a whole process, as cron runs it) at --alert-projects projects, each
    with a model seen yesterday that the price list does not know, delivered to a local webhook and a
    local SMTP server: one digest per project, every email in one SMTP session."""
    sys.path.insert(0, str(BENCH_DIR.parent / "pytests"))
    from local_servers import Smtp, Webhook

    run = Run(fresh_database(server, "wl_bench_alerts"))
    run.cli("generate", "--rows", "0", "--allow-external")
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with run.connect() as conn:
        conn.execute(ALERT_TRAFFIC, {"today": today, "projects": args.alert_projects})
        conn.execute("analyze public.usage_logs")
    run.dbt("build", "--exclude", "resource_type:test", "resource_type:unit_test")
    webhook, smtp = Webhook(), Smtp()
    try:
        env = {"WATCHLLM_ALERT_WEBHOOK_URL": webhook.url, "WATCHLLM_SMTP_URL": smtp.url,
               "WATCHLLM_ALERT_EMAIL_TO": "ops@example.com"}
        first = run.cli("alerts", "check", extra_env=env)
        again = run.cli("alerts", "check", extra_env=env)
        posts, emails = len(webhook.accepted), len(smtp.messages)
    finally:
        webhook.close()
        smtp.close()
    with run.connect() as conn:
        fired = conn.execute("select count(*) from analytics.alert_events").fetchone()[0]
        undelivered = conn.execute(
            "select count(*) from analytics.alert_events where delivered_at is null").fetchone()[0]
    drop_database(server, run.env["PGDATABASE"])
    return {
        "alert_projects": args.alert_projects,
        "alerts_fired_at_scale": fired,
        "alerts_undelivered_at_scale": undelivered,
        "alerts_check_at_scale_s": first,
        "alerts_check_at_scale_again_s": again,
        "alerts_webhook_posts_at_scale": posts,
        "alerts_emails_at_scale": emails,
        "alerts_messages_per_s_at_scale": (posts + emails) / first,
    }


def postgres_settings(server) -> dict:
    with psycopg.connect(**database._kwargs({**server.env, "PGDATABASE": "postgres"})) as conn:
        names = ("server_version", "shared_buffers", "work_mem", "maintenance_work_mem",
                 "max_parallel_workers_per_gather", "effective_cache_size", "jit")
        return {n: conn.execute(sql.SQL("show {}").format(sql.Identifier(n))).fetchone()[0] for n in names}


def summarise(small: dict, large: dict, server) -> dict:
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    pg = postgres_settings(server)
    return {
        "dashboard_p95_ms_10m": max(large["dashboard_busiest_p95_ms"], large["dashboard_median_p95_ms"]),
        "dashboard_speedup_vs_raw_10m": large["raw_scan_busiest_median_ms"] / large["dashboard_busiest_p50_ms"],
        "dashboard_speedup_vs_raw_median_project_10m":
            large["raw_scan_median_median_ms"] / large["dashboard_median_p50_ms"],
        "percentiles_full_build_overhead_10m":
            large["full_build_model_s"] / large["full_build_without_sketches_model_s"],
        "percentiles_incremental_overhead_10m":
            large["incremental_with_sketches_model_s"] / large["incremental_without_sketches_model_s"],
        "dashboard_kathmandu_vs_utc_p95_busiest_10m":
            large["dashboard_busiest_kathmandu_p95_ms"] / large["dashboard_busiest_p95_ms"],
        "dashboard_kathmandu_vs_utc_p95_median_10m":
            large["dashboard_median_kathmandu_p95_ms"] / large["dashboard_median_p95_ms"],
        "dashboard_unstored_zone_vs_utc_p95_busiest_10m":
            large["dashboard_busiest_unstored_zone_p95_ms"] / large["dashboard_busiest_p95_ms"],
        "dashboard_unstored_zone_vs_utc_p95_median_10m":
            large["dashboard_median_unstored_zone_p95_ms"] / large["dashboard_median_p95_ms"],
        "dashboard_366d_unstored_zone_p95_ms_busiest_10m": large["dashboard_busiest_366d_unstored_zone_p95_ms"],
        "dashboard_366d_unstored_zone_other_tenant_p95_ms_busiest_10m":
            large["dashboard_busiest_366d_unstored_zone_other_tenant_p95_ms"],
        "sketch_share_of_aggregate_bytes_10m": sum(large[f"{n}_sketch_mib"] for n in SKETCHED) / sum(
            large[f"{n}_mib"] for n in SKETCHED),
        "scheduled_build_wall_s_10m": large["incremental_wall_s"],
        "scheduled_build_30d_vs_3d": large["incremental_wall_s"] / small["incremental_wall_s"],
        "scheduled_build_models_s_10m": large["incremental_models_s"],
        "scheduled_build_tests_s_10m": large["incremental_tests_s"],
        "scheduled_build_models_30d_vs_3d": large["incremental_models_s"] / small["incremental_models_s"],
        "scheduled_build_tests_30d_vs_3d": large["incremental_tests_s"] / small["incremental_tests_s"],
        "deep_check_wall_s_10m": large["deep_check_wall_s"],
        "alerts_check_s_10m": large["alerts_check_s"],
        "alerts_check_30d_vs_3d": large["alerts_check_s"] / small["alerts_check_s"],
        "dagster_hourly_tick_s_10m": large["dagster_hourly_tick_s"],
        "incremental_speedup_vs_full_10m": large["full_build_model_s"] / large["incremental_models_s"],
        "incremental_vs_floor_10m": large["incremental_models_s"] / large["incremental_floor_s"],
        "full_build_vs_floor_10m": large["full_build_model_s"] / large["floor_full_s"],
        "backfill_vs_full_build": large["backfill_model_s"] / large["full_build_model_s"],
        "speedup_vs_seed_function_loop": large["guide_single_statement_s"] / large["incremental_models_s"],
        "speedup_vs_seed_function_loop_statement_time":
            large["guide_single_statement_s"] / max(large["incremental_statement_s"], 1e-3),
        "speedup_vs_seed_function_same_hour_one_pass":
            large["guide_single_statement_s"] / large["ours_one_hour_statement_s"],
        "full_build_vs_contract_grain_floor_10m": large["full_build_model_s"] / large["contract_grain_floor_full_s"],
        "full_build_int_model_vs_contract_grain_floor_10m":
            large["full_build_int_usage_hourly_by_model_s"] / large["contract_grain_floor_full_s"],
        "incremental_vs_contract_grain_floor_10m":
            large["incremental_models_s"] / large["incremental_contract_grain_floor_s"],
        "token_classes_full_build_overhead_10m":
            large["token_classes_full_build_with_model_s"] / large["token_classes_full_build_without_model_s"],
        "token_classes_scheduled_overhead_10m":
            large["token_classes_scheduled_with_models_s"] / large["token_classes_scheduled_without_models_s"],
        "token_classes_dashboard_p95_ratio_10m":
            large["token_classes_dashboard_with_p95_ms"] / large["token_classes_dashboard_without_p95_ms"],
        "attribution_scheduled_overhead_10m":
            large["attribution_scheduled_with_wall_s"] / large["attribution_scheduled_without_wall_s"],
        "attribution_scheduled_models_overhead_10m":
            large["attribution_scheduled_with_models_s"] / large["attribution_scheduled_without_models_s"],
        "attribution_usage_by_dimension_daily_mib_10m": large["attribution_usage_by_dimension_daily_mib"],
        "attribution_breakdown_p95_ms_10m": max(
            large[f"attribution_breakdown_{d}_p95_ms"] for d in ("api_key", "end_user", "tag")),
        "trigger_insert_slowdown": large["insert_plain_rows_per_s"] / large["insert_trigger_rows_per_s"],
        "peak_rss_runner_mib": self_rss,
        "peak_rss_dbt_mib": children_rss,
        "machine": {"cores": os.cpu_count(),
                    "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
                    "platform": platform.platform()},
        "postgres_version": pg["server_version"],
        "postgres_settings": {**pg, "build_work_mem (dbt var, SET LOCAL per aggregate model)": BUILD_WORK_MEM},
        "sizes": {"small": small, "large": large},
    }


SKETCHED = (
    "int_usage_hourly_by_model", "usage_aggregations_hourly", "usage_aggregations_daily", "usage_by_model_daily",
)
# The targets: the scheduled path costs what the new hour costs, whatever the history; the
# percentiles, the local-time dashboard and the forecast stay within their budgets.
TARGETS = {
    "percentiles_full_build_overhead_10m": ("<=", 1.25),
    "percentiles_incremental_overhead_10m": ("<=", 1.15),
    "dashboard_p95_ms_10m": ("<=", 10),
    "dashboard_speedup_vs_raw_10m": (">=", 100),
    "dashboard_unstored_zone_vs_utc_p95_busiest_10m": ("<=", 3),
    "dashboard_366d_unstored_zone_p95_ms_busiest_10m": ("<=", 500),
    "dashboard_kathmandu_vs_utc_p95_busiest_10m": ("<=", 2),
    "dashboard_kathmandu_vs_utc_p95_median_10m": ("<=", 2),
    "forecast_mape_trending": ("<=", 10),
    "forecast_mape_trending_vs_naive": ("<=", 0.7),
    "forecast_mape_flat_vs_naive": ("<=", 1),
    "scheduled_build_wall_s_10m": ("<=", 15),
    "scheduled_build_30d_vs_3d": ("<=", 1.3),
    "backfill_vs_full_build": ("<=", 1.5),
    "token_classes_full_build_overhead_10m": ("<=", 1.3),
    "token_classes_scheduled_overhead_10m": ("<=", 1.15),
    "attribution_scheduled_overhead_10m": ("<=", 1.25),
    "attribution_breakdown_p95_ms_10m": ("<=", 20),
}


def markdown(summary: dict, small: dict, large: dict) -> str:
    lines = ["| figure | value | target | met |", "|---|---:|---:|:---:|"]
    for key, value in summary.items():
        if not isinstance(value, (int, float)):
            continue
        target = TARGETS.get(key)
        met = "" if target is None else ("yes" if (value <= target[1] if target[0] == "<=" else value >= target[1])
                                         else "no")
        lines.append(f"| {key} | {value:,.2f} | {'' if target is None else f'{target[0]} {target[1]}'} | {met} |")
    heading = [f"{size['rows']:,} rows, {size['days']} days" for size in (small, large)]
    lines += ["", f"| raw figure | {heading[0]} | {heading[1]} |", "|---|---:|---:|"]
    for key in large:
        if isinstance(large[key], (int, float)):
            lines.append(f"| {key} | {small.get(key, float('nan')):,.3f} | {large[key]:,.3f} |")
        elif isinstance(large[key], str) and key.endswith("_test"):
            lines.append(f"| {key} | {small.get(key, '')} | {large[key]} |")
    lines += ["", f"Machine: {summary['machine']}; PostgreSQL {summary['postgres_version']}; settings:"
              f" {summary['postgres_settings']}"]
    return "\n".join(lines) + "\n"


def chart(small: dict, large: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [small["rows"] / 1e6, large["rows"] / 1e6]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(sizes, [small["raw_scan_busiest_median_ms"], large["raw_scan_busiest_median_ms"]], "o-",
              label="raw scan (guide's before)")
    left.plot(sizes, [small["dashboard_busiest_p95_ms"], large["dashboard_busiest_p95_ms"]], "o-",
              label="get_dashboard_stats p95")
    left.set(xlabel="history (million rows)", ylabel="ms, busiest project (log)", yscale="log",
             title="Dashboard read")
    left.legend()
    right.plot(sizes, [small["full_build_model_s"], large["full_build_model_s"]], "o-", label="full build")
    right.plot(sizes, [small["floor_full_s"], large["floor_full_s"]], "o--", label="floor: one GROUP BY")
    right.plot(sizes, [small["incremental_wall_s"], large["incremental_wall_s"]], "o-",
               label="scheduled dbt build (1 h), whole process")
    right.set(xlabel="history (million rows)", ylabel="seconds (log)", yscale="log", title="Builds")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=1_000_000, help="rows of the short history")
    parser.add_argument("--small-days", type=int, default=3, help="days of the short history")
    parser.add_argument("--large", type=int, default=10_000_000, help="rows of the long history")
    parser.add_argument("--days", type=int, default=30, help="days of the long history")
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=200, help="dashboard calls per project")
    parser.add_argument("--repeat", type=int, default=5, help="scheduled hours per size")
    parser.add_argument("--trigger-rows", type=int, default=100_000, help="rows inserted with and without trigger")
    parser.add_argument("--backtest-projects", type=int, default=100, help="generated histories of each kind")
    parser.add_argument("--alert-projects", type=int, default=10_000,
                        help="projects of the alerts-at-scale scenario, each with a new unpriced model")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where latest.{json,md,png} go")
    parser.add_argument("--one-size", action="store_true",
                        help="measure the long history only and report it as the short one too (a smoke run: "
                             "every figure is produced, the ratios between the two histories are 1)")
    args = parser.parse_args()
    if min(args.small, args.small_days, args.large, args.days, args.projects, args.calls, args.repeat,
           args.trigger_rows, args.backtest_projects, args.alert_projects) < 1:
        parser.error("every size must be at least 1")

    started = time.perf_counter()
    server = database.start_embedded()
    small = None if args.one_size else run_size(server, args.small, args.small_days, args)
    large = run_size(server, args.large, args.days, args)
    small = small or large
    log("forecast backtest")
    backtest = forecast_backtest(server, args)
    log(f"alerts check at {args.alert_projects:,} projects")
    at_scale = alerts_at_scale(server, args)
    summary = summarise(small, large, server)
    summary.update(backtest)
    summary.update(at_scale)
    for kind in ("trending", "flat"):
        summary[f"forecast_mape_{kind}_vs_naive"] = (
            backtest[f"forecast_mape_{kind}"] / backtest[f"forecast_mape_{kind}_naive"]
        )
    summary["bench_wall_s"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    table = markdown(summary, small, large)
    (args.out / "latest.md").write_text(table)
    chart(small, large, args.out / "latest.png")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
