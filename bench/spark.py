"""`make bench-spark`: the same history built on Postgres and on a local Spark, in one run.

For each size (default 1M rows over 3 days and 10M over 30 days, 1000 projects), the same
generated logs are built:
- on Postgres: the full build (`dbt build` of the seed and models, whole process) and a scheduled
  run after one more hour;
- on Spark: `spark export-logs` once, then the same full build with `--target spark` on local[1]
  and on local[2] (whole processes, Spark's start-up included; the aggregates are dropped between
  the two), and the scheduled run after the new hour (the new hour's day exported, then the
  incremental build: it overwrites only the partitions of its window);
- `spark publish` of everything into Postgres, then `export-logs --force` (every day again);
- the same export and publish through a Thrift server on the same warehouse (over JDBC), with the
  peak memory of the client process beside the local session's.
Figures are seconds of wall time and ratios within the run. Writes bench/results/spark.json and .md.
Local Spark on 2 cores is not expected to beat Postgres: the point is how its time scales with cores.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from run import fresh_database  # noqa: E402  (bench/run.py: this script's directory is on sys.path)

from orchestration import settings  # noqa: E402
from orchestration.core import database  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"


def log(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", flush=True)


# models and the seed, without tests (the tests are the same work on both engines and not what is compared)
BUILD = ["build", "--quiet", "--exclude", "resource_type:test", "resource_type:unit_test"]


def timed(args: list[str], env: dict) -> float:
    return measured(args, env)[0]


def measured(args: list[str], env: dict) -> tuple[float, float]:
    """Seconds of wall time and the peak memory (MB, resident) of one whole CLI process with every
    process it starts: a local session's Spark JVM and a dbt run are its children."""
    import psutil

    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestration.cli", *args],
        cwd=settings.PROJECT_DIR,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
    )
    root, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        with contextlib.suppress(psutil.Error):
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        time.sleep(0.2)
    if process.returncode != 0:
        raise subprocess.CalledProcessError(process.returncode, args)
    return time.perf_counter() - started, peak / 2**20


def run_size(server, rows: int, days: int, projects: int) -> dict:
    name = f"wl_bench_spark_{rows}_{days}d"
    env = {**fresh_database(server, name), "DBT_TARGET_PATH": str(BENCH_DIR / ".dbt" / "spark-target")}
    end = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=2)
    log(f"{rows:,} rows over {days} days: generating")
    timed(
        [
            "generate",
            "--rows",
            str(rows),
            "--days",
            str(days),
            "--projects",
            str(projects),
            "--seed",
            "1",
            "--end",
            end.isoformat(),
            "--allow-external",
        ],
        env,
    )
    out: dict = {"rows": rows, "days": days}
    log("Postgres: full build")
    out["postgres_full_build_s"] = timed(["dbt", *BUILD], env)
    spark_dir = BENCH_DIR / ".dbt" / f"spark-{rows}"
    shutil.rmtree(spark_dir, ignore_errors=True)
    spark_env = {**env, "WATCHLLM_SPARK_DIR": str(spark_dir), "WATCHLLM_SPARK_MASTER": "local[2]"}
    log("Spark: export-logs")
    out["spark_export_logs_s"] = timed(["spark", "export-logs"], spark_env)
    for cores in (1, 2):
        spark_env["WATCHLLM_SPARK_MASTER"] = f"local[{cores}]"
        if cores == 2:
            drop_spark_aggregates(spark_env)
        log(f"Spark local[{cores}]: full build")
        out[f"spark_full_build_local{cores}_s"] = timed(["dbt", *BUILD, "--target", "spark"], spark_env)
    log("one more hour of traffic")
    new_hour = end + dt.timedelta(hours=1)
    timed(
        [
            "generate",
            "--rows",
            str(max(1, rows // (days * 24))),
            "--days",
            str(1 / 24),
            "--projects",
            str(projects),
            "--seed",
            "2",
            "--end",
            new_hour.isoformat(),
            "--allow-external",
        ],
        env,
    )
    out["postgres_incremental_s"] = timed(["dbt", *BUILD], env)
    first_new_day = (new_hour - dt.timedelta(hours=1)).date().isoformat()
    out["spark_incremental_export_s"] = timed(["spark", "export-logs", "--start", first_new_day], spark_env)
    log("Spark local[2]: scheduled (incremental) build")
    out["spark_incremental_build_local2_s"] = timed(["dbt", *BUILD, "--target", "spark"], spark_env)
    log("publish into Postgres")
    out["spark_publish_s"], out["spark_publish_client_peak_mb"] = measured(["spark", "publish"], spark_env)
    out["spark_export_all_client_peak_mb"] = measured(["spark", "export-logs", "--force"], spark_env)[1]
    out.update(through_thrift_server(server, env, spark_dir))
    out["spark_full_build_vs_postgres"] = out["spark_full_build_local2_s"] / out["postgres_full_build_s"]
    out["spark_local1_vs_local2"] = out["spark_full_build_local1_s"] / out["spark_full_build_local2_s"]
    out["spark_incremental_vs_full"] = out["spark_incremental_build_local2_s"] / out["spark_full_build_local2_s"]
    return out


def through_thrift_server(server, env: dict, spark_dir: Path) -> dict:
    """export-logs (every day again) and publish through a Thrift server on the same warehouse and
    metastore (pytests/spark_cluster.py): the rows move between Spark and Postgres over JDBC, never
    through the client, whose peak memory is measured beside the local session's."""
    sys.path.insert(0, str(settings.PROJECT_DIR / "pytests"))
    import spark_cluster

    out: dict = {}
    socket_path = f"{server.env['PGHOST']}/.s.PGSQL.{server.env['PGPORT']}"
    with (
        spark_cluster.tcp_port_for_unix_socket(socket_path) as postgres_port,
        spark_cluster.thrift_server(spark_dir, cores=2, memory="2g") as thrift_port,
    ):
        thrift_env = {
            **env,
            "WATCHLLM_SPARK_METHOD": "thrift",
            "WATCHLLM_SPARK_HOST": "127.0.0.1",
            "WATCHLLM_SPARK_PORT": str(thrift_port),
            "WATCHLLM_SPARK_POSTGRES_URL": f"jdbc:postgresql://127.0.0.1:{postgres_port}/{env['PGDATABASE']}",
        }
        log("Thrift server: export-logs of every day (JDBC)")
        out["thrift_export_all_s"], out["thrift_export_all_client_peak_mb"] = measured(
            ["spark", "export-logs", "--force"], thrift_env
        )
        log("Thrift server: publish (JDBC)")
        out["thrift_publish_s"], out["thrift_publish_client_peak_mb"] = measured(["spark", "publish"], thrift_env)
    return out


def drop_spark_aggregates(spark_env: dict) -> None:
    """Drop what a Spark build made (the analytics database), keeping the exported usage_logs."""
    program = (
        "from orchestration.spark.session import session\n"
        "with session() as spark:\n"
        "    spark.sql('drop database if exists analytics cascade')\n"
    )
    subprocess.run(
        [sys.executable, "-c", program],
        cwd=settings.PROJECT_DIR,
        env={**os.environ, **spark_env},
        check=True,
        stdout=subprocess.DEVNULL,
    )


def markdown(results: list[dict]) -> str:
    keys = [k for k in results[0] if k not in ("rows", "days")]
    lines = [
        "| figure | " + " | ".join(f"{r['rows']:,} rows, {r['days']} days" for r in results) + " |",
        "|---|" + "---:|" * len(results),
    ]
    lines += [f"| {k} | " + " | ".join(f"{r[k]:,.2f}" for r in results) + " |" for k in keys]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000:3,10000000:30", help="ROWS:DAYS,... (default: both)")
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    server = database.start_embedded()
    results = [
        run_size(server, int(rows), int(days), args.projects)
        for rows, days in (part.split(":") for part in args.sizes.split(","))
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"machine": {"cores": os.cpu_count(), "platform": platform.platform()}, "sizes": results}
    (out / "spark.json").write_text(json.dumps(summary, indent=2))
    (out / "spark.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
