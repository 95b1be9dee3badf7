"""`make bench`: the pipeline against its baselines, side by side in one run on one database.

Scenarios (sizes are flags): dashboard read vs the guide's raw-scan query; incremental build vs
full build vs the floor (a bare GROUP BY of the same rows); full build vs the floor. Timings are
medians of repetitions and reported as ratios against a baseline measured in the same run.
Writes bench/results/latest.json and latest.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from orchestration import database, settings

RESULTS = settings.PROJECT_DIR / "bench" / "results"
MODELS = ("int_usage_hourly_by_model", "usage_aggregations_hourly", "usage_aggregations_daily",
          "usage_by_model_daily", "project_savings_monthly")
RAW_SCAN = """
select date(created_at) as date, count(*) as requests, sum(cost_usd) as cost
from public.usage_logs
where project_id = %s and created_at >= now() - interval '30 days'
group by date(created_at)
"""
FLOOR = """
create temporary table floor_hourly as
select project_id, date_trunc('hour', created_at at time zone 'UTC') as hour_start, count(*) as n,
       sum(tokens_input) as ti, sum(tokens_output) as tout, sum(cost_usd) as cost
from public.usage_logs where created_at >= %s
group by 1, 2
"""


def fresh_database(server: database.Connection, name: str) -> dict[str, str]:
    admin = {**server.env, "PGDATABASE": "postgres"}
    with psycopg.connect(**database._kwargs(admin), autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}"')
    return {**server.env, "PGDATABASE": name}


def cli(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "orchestration.cli", *args], cwd=settings.PROJECT_DIR,
                   env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def models_db_time() -> float:
    results = json.loads((settings.PROJECT_DIR / "target" / "run_results.json").read_text())
    return sum(r["execution_time"] for r in results["results"] if r["unique_id"].split(".")[-1] in MODELS)


def timed(conn, query: str, params=(), repeat: int = 5) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        conn.execute(query, params).fetchall()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def floor_seconds(conn, since: dt.datetime, repeat: int = 3) -> float:
    samples = []
    for _ in range(repeat):
        conn.execute("drop table if exists floor_hourly")
        started = time.perf_counter()
        conn.execute(FLOOR, (since,))
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_size(server, rows: int, days: int, projects: int, calls: int) -> dict:
    env = fresh_database(server, f"wl_bench_{rows}")
    env_cli = {k: v for k, v in env.items()}
    end = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=1)
    generate_s = cli(env_cli, "generate", "--rows", str(rows), "--days", str(days), "--projects", str(projects),
                     "--seed", "1", "--end", end.isoformat(), "--allow-external")
    full_wall = cli(env_cli, "dbt", "build", "--exclude", "resource_type:test", "resource_type:unit_test")
    full_db = models_db_time()
    out = {"rows": rows, "generate_s": generate_s, "full_build_wall_s": full_wall, "full_build_db_s": full_db}
    with psycopg.connect(**database._kwargs(env), autocommit=True) as conn:
        conn.execute("set work_mem = '64MB'")
        out["floor_full_s"] = floor_seconds(conn, dt.datetime(1900, 1, 1, tzinfo=dt.UTC))
        # one more hour at the generator's rate, then the scheduled (lookback) build
        per_hour = max(1, rows // (days * 24))
        cli(env_cli, "generate", "--rows", str(per_hour), "--days", str(1 / 24), "--projects", str(projects),
            "--seed", "2", "--end", (end + dt.timedelta(hours=1)).isoformat(), "--allow-external")
        out["incremental_wall_s"] = cli(env_cli, "dbt", "run")
        out["incremental_db_s"] = models_db_time()
        newest = conn.execute("select max(hour_start) from analytics.usage_aggregations_hourly").fetchone()[0]
        out["floor_window_s"] = floor_seconds(conn, newest - dt.timedelta(hours=3))
        busiest, median = pick_projects(conn)
        for label, project in (("busiest", busiest), ("median", median)):
            latencies = []
            for _ in range(calls):
                started = time.perf_counter()
                conn.execute("select * from public.get_dashboard_stats(%s, 30)", (project,)).fetchall()
                latencies.append((time.perf_counter() - started) * 1000)
            raw = timed(conn, RAW_SCAN, (project,), repeat=5) * 1000
            out[f"dashboard_{label}_p50_ms"] = percentile(latencies, 0.5)
            out[f"dashboard_{label}_p95_ms"] = percentile(latencies, 0.95)
            out[f"raw_scan_{label}_ms"] = raw
    return out


def pick_projects(conn) -> tuple:
    rows = conn.execute("select project_id from analytics.usage_aggregations_daily group by 1"
                        " order by sum(total_requests) desc").fetchall()
    return rows[0][0], rows[len(rows) // 2][0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=1_000_000)
    parser.add_argument("--large", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()

    server = database.start_embedded()
    small = run_size(server, args.small, args.days, args.projects, args.calls)
    large = run_size(server, args.large, args.days, args.projects, args.calls)
    with psycopg.connect(**database._kwargs({**server.env, "PGDATABASE": "postgres"})) as conn:
        version = conn.execute("show server_version").fetchone()[0]
    summary = {
        "dashboard_p95_ms_10m": large["dashboard_busiest_p95_ms"],
        "dashboard_speedup_vs_raw_10m": large["raw_scan_busiest_ms"] / large["dashboard_busiest_p50_ms"],
        "incremental_speedup_vs_full_10m": large["full_build_db_s"] / large["incremental_db_s"],
        "incremental_growth_1m_to_10m": large["incremental_db_s"] / small["incremental_db_s"],
        "incremental_vs_floor_10m": large["incremental_db_s"] / large["floor_window_s"],
        "full_build_vs_floor_10m": large["full_build_db_s"] / large["floor_full_s"],
        "machine": {"cores": os.cpu_count(), "memory_gib": round(os.sysconf("SC_PAGE_SIZE")
                    * os.sysconf("SC_PHYS_PAGES") / 2**30, 1), "platform": platform.platform()},
        "postgres_version": version,
        "peak_rss_children_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "sizes": {"small": small, "large": large},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(summary, indent=2, default=str))
    lines = ["| figure | value |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in summary.items() if isinstance(v, float)]
    (RESULTS / "latest.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
