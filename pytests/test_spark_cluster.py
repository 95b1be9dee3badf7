"""`spark export-logs` and `spark publish` against a Spark that is not in the client's process: Spark's
own HiveThriftServer2 on 127.0.0.1 (pytests/spark_cluster.py), reached the way `dbt build --target
spark` reaches it (WATCHLLM_SPARK_METHOD=thrift). It moves the rows between itself and Postgres over
JDBC, through a TCP port standing in for the network. Compared with the Postgres build of the same
messy logs and with the independent reference; then publishes killed at several moments, two at
once, a day edited in place and a bucket gone from Spark. Part of `make test` and `make test-spark`."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal

import psycopg
import pytest
import spark_cluster
from conftest import (
    GRAINS,
    REPO,
    SEED,
    SPARK_PUBLISHED_KEYS,
    assert_dashboard_matches,
    assert_tables_equal,
    raw_rows,
    table,
    target_dir,
)
from reference import compute, load_prices

if os.environ.get("WATCHLLM_SPARK_TESTS") == "required":  # make test / test-spark: a missing pyspark is a failure
    import pyhive  # noqa: F401
    import pyspark  # noqa: F401
else:
    pytest.importorskip("pyhive", reason="the Spark extras are not installed: run `make setup-spark`")
    if spark_cluster.available():
        pytest.skip(spark_cluster.available(), allow_module_level=True)
pytestmark = pytest.mark.spark

END = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)  # the data runs up to this hour
KATHMANDU = "Asia/Kathmandu"
WRITER = "wl_test_spark_writer"  # the Postgres role the cluster's JDBC connections use
OUTPUTS = {
    **SPARK_PUBLISHED_KEYS,
    # built on Postgres from the published tables, by publish itself
    "usage_aggregations_local_daily": ("project_id", "date"),
    "project_cost_forecast": ("project_id", "month"),
}


@pytest.fixture(scope="module")
def cluster(make_db, tmp_path_factory):
    """Both databases built from the same logs: `postgres` on Postgres, `published` through the
    Thrift server (export-logs, dbt build --target spark, publish)."""
    postgres = make_db("wl_test_cluster_postgres")
    published = make_db("wl_test_cluster_published")
    for db in (postgres, published):
        db.generate(rows=3000, days=3, projects=5, seed=42, end=END.isoformat())
        db.build_models()
    busiest = postgres.query("select project_id from public.usage_logs group by 1 order by count(*) desc limit 1")[0][
        "project_id"
    ]
    for db in (postgres, published):
        with db.connect() as conn:
            conn.execute(
                "insert into analytics.project_settings (project_id, time_zone) values (%s, %s)", (busiest, KATHMANDU)
            )
    # every day again, as `rebuild` fills the local days of a zone set after the first build
    postgres.cli(
        "rebuild", "--start", str((END - dt.timedelta(days=4)).date()), "--end", str(END.date() + dt.timedelta(days=1))
    )
    with published.connect() as conn:  # the Postgres tables exist, empty: publish must fill them
        conn.execute("truncate " + ", ".join(f"analytics.{name}" for name in OUTPUTS))
    # the cluster logs in as a role of its own with only what docs/scaling-out.md asks for
    with published.connect() as conn:
        if not conn.execute("select 1 from pg_roles where rolname = %s", (WRITER,)).fetchone():
            conn.execute(f"create role {WRITER} login")
        conn.execute(f"grant usage on schema public to {WRITER}")
        conn.execute(f"grant select on public.usage_logs to {WRITER}")
        conn.execute(f"grant usage on schema analytics to {WRITER}")
        conn.execute(f"grant select on analytics.watchllm_table_bounds to {WRITER}")
    socket_path = f"{published.env['PGHOST']}/.s.PGSQL.{published.env['PGPORT']}"
    with (
        spark_cluster.tcp_port_for_unix_socket(socket_path) as postgres_port,
        spark_cluster.thrift_server(tmp_path_factory.mktemp("thrift")) as thrift_port,
    ):
        env = {
            "WATCHLLM_SPARK_METHOD": "thrift",
            "WATCHLLM_SPARK_HOST": "127.0.0.1",
            "WATCHLLM_SPARK_PORT": str(thrift_port),
            "WATCHLLM_SPARK_POSTGRES_URL": f"jdbc:postgresql://127.0.0.1:{postgres_port}/{published.env['PGDATABASE']}",
            "WATCHLLM_SPARK_POSTGRES_USER": WRITER,
            "DBT_TARGET_PATH": str(REPO / "target" / f"pytest-cluster-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"),
        }
        exported = published.cli("spark", "export-logs", extra_env=env)
        build = published.cli("dbt", "build", "--target", "spark", extra_env=env, timeout=1200)
        publish = published.cli("spark", "publish", extra_env=env)
        yield postgres, published, env, busiest, exported, build, publish


def reference_of(db):
    return compute(raw_rows(db), load_prices(SEED), db.now())


def assert_equal_to_the_postgres_build(postgres, published, what: str) -> None:
    for name, keys in OUTPUTS.items():
        assert_tables_equal(table(published, name, keys), table(postgres, name, keys), f"{name} ({what})")


def test_a_thrift_server_builds_exports_and_publishes_every_figure_of_the_postgres_build(cluster):
    postgres, published, _, busiest, exported, build, publish = cluster
    assert "day(s) exported" in exported.stdout
    assert "ERROR=0" in build.stdout, build.stdout[-3000:]
    assert "rows into 9 Postgres tables, in one transaction" in publish.stdout, publish.stdout
    assert "usage_aggregations_local_daily and project_cost_forecast rebuilt on Postgres" in publish.stdout
    assert_equal_to_the_postgres_build(postgres, published, "first publish")
    reference = reference_of(postgres)
    for name, (keys, attribute) in GRAINS.items():
        assert_tables_equal(table(published, name, keys), getattr(reference, attribute), f"{name} vs reference")
    for zone in ("UTC", KATHMANDU, "America/New_York"):
        query = "select * from public.get_dashboard_stats(%s, 5, %s)"
        assert published.query(query, (busiest, zone)) == postgres.query(query, (busiest, zone)), zone


def test_after_a_publish_local_days_and_the_forecast_equal_the_reference(cluster):
    _, published, _, busiest, *_ = cluster
    reference = reference_of(published)
    stored = published.query(
        "select * from analytics.usage_aggregations_local_daily where project_id = %s order by date", (busiest,)
    )
    assert len(stored) >= 3 and all(r["time_zone"] == KATHMANDU for r in stored)
    # the dashboard in the project's own zone reads these stored days
    assert_dashboard_matches(
        published.query("select * from public.get_dashboard_stats(%s, 5, %s)", (busiest, KATHMANDU)),
        reference.local_dashboard(busiest, 5, KATHMANDU, published.now()),
        "stored Kathmandu days after publish",
    )
    as_of = published.now().astimezone(dt.UTC).date() - dt.timedelta(days=1)
    month = (as_of + dt.timedelta(days=1)).replace(day=1)
    forecasts = published.query("select * from analytics.project_cost_forecast")
    assert forecasts
    for forecast in forecasts:
        month_to_date = sum(
            (
                row["total_cost_usd"]
                for (project, day), row in reference.daily.items()
                if project == forecast["project_id"] and month <= day <= as_of
            ),
            Decimal(0),
        )
        assert forecast["month"] == month and forecast["month_to_date_cost_usd"] == month_to_date


def test_export_logs_skips_matching_days_and_re_exports_a_day_edited_in_place(cluster):
    postgres, published, env, *_ = cluster
    again = published.cli("spark", "export-logs", extra_env=env)
    assert "export-logs: 0 day(s) exported" in again.stdout, again.stdout
    # an edit in place keeps the day's row count: money only, on kept rows priced as recorded, so
    # that the aggregates change too (the publish tests below rely on it)
    day = (END - dt.timedelta(days=1)).date()
    edit = (
        "update public.usage_logs set cost_usd = cost_usd + 0.000000000000000001"
        " where id in (select request_id from analytics.int_usage_logs_classified where is_recorded_priced"
        " and created_at >= %s and created_at < %s order by request_id limit 3)"
    )
    bounds = (
        dt.datetime.combine(day, dt.time(), dt.UTC),
        dt.datetime.combine(day, dt.time(), dt.UTC) + dt.timedelta(days=1),
    )
    for db in (postgres, published):
        with db.connect() as conn:
            assert conn.execute(edit, bounds).rowcount == 3
    edited = published.cli("spark", "export-logs", extra_env=env)
    assert "export-logs: 1 day(s) exported" in edited.stdout and f"{day}:" in edited.stdout, edited.stdout
    forced = published.cli(
        "spark", "export-logs", "--start", str(day), "--end", str(day + dt.timedelta(days=1)), "--force", extra_env=env
    )
    assert "export-logs: 1 day(s) exported" in forced.stdout, forced.stdout


def staging_tables(db) -> list[str]:
    return [r["tablename"] for r in db.query("select tablename from pg_tables where schemaname = 'analytics_publish'")]


def snapshot(db) -> dict:
    return {name: table(db, name, keys) for name, keys in OUTPUTS.items() if name != "project_cost_forecast"}


RUNS = (f"publish-{number}" for number in itertools.count())


def start_publish(db, env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestration.cli", "spark", "publish", *args],
        cwd=REPO,
        # a target directory of its own, as two runners on two machines have
        env={**os.environ, **db.env, **env, "DBT_TARGET_PATH": str(target_dir(db.env["PGDATABASE"], (next(RUNS),)))},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def kill_after_line(process: subprocess.Popen, text: str) -> None:
    for line in process.stdout:
        if text in line:
            break
    process.send_signal(signal.SIGKILL)
    process.wait()


def waiting_on_an_advisory_lock(db) -> bool:
    return bool(
        db.query(
            "select 1 from pg_stat_activity where datname = current_database() and wait_event = 'advisory'"
            " and query like '%%pg_advisory_xact_lock%%'"
        )
    )


def test_a_publish_killed_at_any_moment_leaves_the_old_state_or_the_new_one(cluster):
    postgres, published, env, *_ = cluster
    # what Spark now has differs from what Postgres holds: the edited day rebuilt on both engines
    day = (END - dt.timedelta(days=1)).date()
    window = ("--start", str(day), "--end", str(day + dt.timedelta(days=1)))
    postgres.cli("rebuild", *window)
    published.cli("rebuild", *window, "--target", "spark", extra_env=env, timeout=1200)
    old = snapshot(published)

    states = []
    # while staging (before the transaction), and right after staging (the transaction may or may not commit)
    for line in ("int_usage_hourly_by_model:", "model_cost_counterfactual_monthly:"):
        kill_after_line(start_publish(published, env, *window), line)
        states.append(snapshot(published))
    # inside the transaction: this session holds the lock of the fourth table, so the publish has
    # replaced three tables when it waits; killed there, nothing of it is left
    holder = psycopg.connect(
        **{
            "host": published.env["PGHOST"],
            "port": published.env["PGPORT"],
            "user": published.env["PGUSER"],
            "dbname": published.env["PGDATABASE"],
        },
        autocommit=True,
    )
    try:
        holder.execute("select pg_advisory_lock(hashtext('watchllm_analytics.analytics.usage_aggregations_daily'))")
        process = start_publish(published, env, *window)
        deadline = time.monotonic() + 300
        while not waiting_on_an_advisory_lock(published):
            assert process.poll() is None and time.monotonic() < deadline, "the publish never reached the lock"
            time.sleep(0.5)
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        holder.close()
    in_transaction = snapshot(published)
    assert in_transaction == old, "a publish killed inside its transaction changed something"
    assert staging_tables(published), "a killed publish leaves its staging tables for the next one to drop"

    finished = published.cli("spark", "publish", *window, extra_env=env)
    assert "in one transaction" in finished.stdout
    assert staging_tables(published) == [], "the next publish drops what dead ones staged"
    new = snapshot(published)
    assert new != old
    for number, state in enumerate(states):
        assert state in (old, new), f"kill {number}: the tables are neither the old state nor the new one"
    assert_equal_to_the_postgres_build(postgres, published, "after the edited day")


def test_two_publishes_at_once_never_double_count(cluster):
    postgres, published, env, *_ = cluster
    processes = [start_publish(published, env) for _ in range(2)]
    for process in processes:
        output = process.communicate(timeout=600)[0]
        assert process.returncode == 0, output[-3000:]
    assert staging_tables(published) == []
    assert_equal_to_the_postgres_build(postgres, published, "two publishes at once")


def test_dagster_publishes_a_partition_in_the_dbt_pool_and_rebuilds_the_postgres_only_outputs(cluster, monkeypatch):
    import dagster as dg

    from orchestration.defs.spark import spark_published_aggregates
    from orchestration.settings import DBT_POOL

    postgres, published, env, *_ = cluster
    assert spark_published_aggregates.op.pool == DBT_POOL  # never beside a build or another publish
    for name, value in {**published.env, **env}.items():
        monkeypatch.setenv(name, value)
    with published.connect() as conn:  # what the partition's publish must put back
        conn.execute(
            "delete from analytics.usage_aggregations_daily where date = %s", ((END - dt.timedelta(days=1)).date(),)
        )
    result = dg.materialize([spark_published_aggregates], partition_key=str((END - dt.timedelta(days=1)).date()))
    assert result.success
    assert_equal_to_the_postgres_build(postgres, published, "a Dagster partition published")


def test_a_bucket_gone_from_spark_within_the_range_is_gone_from_postgres(cluster):
    _, published, env, busiest, *_ = cluster
    day = (END - dt.timedelta(days=2)).date()
    before = published.query(
        "select count(*) as n from analytics.usage_aggregations_daily where project_id = %s and date = %s",
        (busiest, day),
    )[0]["n"]
    assert before == 1
    # the day's partition rewritten on Spark without that project's row (dynamic partition overwrite)
    program = (
        "from orchestration.spark.connection import connect\n"
        "with connect() as spark:\n"
        '    spark.sql("insert overwrite table analytics.usage_aggregations_daily partition (date) '
        f"select * from analytics.usage_aggregations_daily where date = date'{day}' "
        f"and project_id <> '{busiest}'\")\n"
    )
    subprocess.run([sys.executable, "-c", program], cwd=REPO, env={**os.environ, **published.env, **env}, check=True)
    published.cli("spark", "publish", "--start", str(day), "--end", str(day + dt.timedelta(days=1)), extra_env=env)
    after = published.query(
        "select date, count(*) as n from analytics.usage_aggregations_daily where project_id = %s"
        " and date between %s and %s group by 1 order by 1",
        (busiest, day - dt.timedelta(days=1), day + dt.timedelta(days=1)),
    )
    assert [r["date"] for r in after] == [day - dt.timedelta(days=1), day + dt.timedelta(days=1)], after
