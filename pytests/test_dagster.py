"""The Dagster code location: loads, maps every model and test, materializes partitions, schedules, checks, UI."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import dagster as dg
import psycopg
import psycopg.rows
import pytest
from conftest import REPO, SEED, assert_row_matches, insert_rows, raw_rows, request, table
from reference import compute, load_prices

UTC = dt.UTC
CONTRACT_TABLES = {
    "usage_aggregations_hourly",
    "usage_aggregations_daily",
    "usage_by_model_daily",
    "project_savings_monthly",
    "usage_logs_rejected",
    "get_dashboard_stats",
}
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


@pytest.fixture(scope="module")
def db(make_db):
    db = make_db("wl_test_dagster")
    db.generate(rows=8000, days=6, projects=6, seed=21)
    db.build_models()
    saved = {k: os.environ.get(k) for k in db.env}
    os.environ.update(db.env)  # in-process Dagster runs resolve the database from PG*
    yield db
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def defs():
    from orchestration.definitions import defs

    return defs


def dbt_resources():
    from orchestration.defs.resources import dbt_resource

    return {"dbt": dbt_resource()}


def test_definitions_validate_from_the_repo_root_with_no_flags():
    result = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "dagster"), "definitions", "validate"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Validation successful" in result.stderr + result.stdout


def test_every_model_and_seed_is_an_asset_and_every_dbt_test_a_check(defs):
    graph = defs.resolve_asset_graph()
    keys = {k.path[-1] for k in graph.get_all_asset_keys()}
    manifest = json.loads((REPO / "target" / "manifest.json").read_text())
    nodes = manifest["nodes"].values()
    models = {n["name"] for n in nodes if n["resource_type"] in ("model", "seed")}
    assert models <= keys and keys >= CONTRACT_TABLES and "usage_logs" in keys
    tests = {n["name"] for n in nodes if n["resource_type"] == "test"}
    checks = {k.name for k in graph.asset_check_keys}
    assert tests <= checks, tests - checks
    assert {"cache_hit_rate_drop"} <= checks
    daily = graph.get(dg.AssetKey(["usage_aggregations_daily"]))
    assert daily.group_name == "marts" and daily.owners and daily.description
    assert daily.code_version  # a changed SQL or seed checksum marks downstream assets stale
    assert graph.get(dg.AssetKey(["model_pricing"])).code_version


def test_lineage_runs_from_usage_logs_to_the_dashboard_function(defs):
    graph = defs.resolve_asset_graph()
    upstream, frontier = set(), [dg.AssetKey(["get_dashboard_stats"])]
    while frontier:
        for parent in graph.get(frontier.pop()).parent_keys:
            if parent not in upstream:
                upstream.add(parent)
                frontier.append(parent)
    assert dg.AssetKey(["proxy", "usage_logs"]) in upstream
    assert dg.AssetKey(["usage_aggregations_daily"]) in upstream


def test_one_hourly_and_one_daily_partition_write_the_right_numbers(db):
    from orchestration.defs.assets import daily_dbt_assets, hourly_dbt_assets

    hour = (db.now() - dt.timedelta(days=2)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    project = uuid.UUID("da650000-0000-0000-0000-000000000001")
    insert_rows(
        db,
        [
            request(
                project,
                hour + dt.timedelta(minutes=m),
                cached=m % 2 == 0,
                cost_usd=0 if m % 2 == 0 else None,
                potential_cost_usd=None,
            )
            for m in range(6)
        ],
    )
    result = dg.materialize(
        [hourly_dbt_assets], partition_key=hour.strftime("%Y-%m-%d-%H:%M"), resources=dbt_resources()
    )
    assert result.success
    reference = compute(raw_rows(db), load_prices(SEED), db.now())
    hourly = table(db, "usage_aggregations_hourly", ("project_id", "hour_start"))
    assert_row_matches(hourly[(project, hour)], reference.hourly[(project, hour)], "hourly partition")

    result = dg.materialize([daily_dbt_assets], partition_key=hour.strftime("%Y-%m-%d"), resources=dbt_resources())
    assert result.success
    daily = table(db, "usage_aggregations_daily", ("project_id", "date"))
    assert_row_matches(daily[(project, hour.date())], reference.daily[(project, hour.date())], "daily partition")
    metadata = next(
        event.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey(["usage_aggregations_daily"])
    )
    assert "partition_range" in metadata and "buckets_in_range" in metadata


def test_three_day_single_run_backfill_equals_a_full_rebuild(db):
    from orchestration.defs.assets import daily_dbt_assets, hourly_dbt_assets

    first = (db.now() - dt.timedelta(days=4)).astimezone(UTC).date()
    last = first + dt.timedelta(days=2)
    db.dbt("run", "--vars", f"{{start: '{first}', end: '{last + dt.timedelta(days=1)}'}}")
    names = {
        "usage_aggregations_hourly": ("project_id", "hour_start"),
        "usage_aggregations_daily": ("project_id", "date"),
        "usage_by_model_daily": ("project_id", "date", "provider", "model"),
    }
    rebuilt = {name: table(db, name, keys) for name, keys in names.items()}
    with db.connect() as conn:  # damage the three days, as a bad deploy might
        start = dt.datetime.combine(first, dt.time(), UTC)
        conn.execute(
            "update analytics.int_usage_hourly_by_model set total_requests = total_requests + 1"
            " where hour_start >= %s and hour_start < %s",
            (start, start + dt.timedelta(days=3)),
        )
        conn.execute("delete from analytics.usage_aggregations_daily where date between %s and %s", (first, last))

    hourly = dg.materialize(
        [hourly_dbt_assets],
        resources=dbt_resources(),
        tags={RANGE_START: f"{first:%Y-%m-%d}-00:00", RANGE_END: f"{last:%Y-%m-%d}-23:00"},
    )
    daily = dg.materialize(
        [daily_dbt_assets],
        resources=dbt_resources(),
        tags={RANGE_START: f"{first:%Y-%m-%d}", RANGE_END: f"{last:%Y-%m-%d}"},
    )
    assert hourly.success and daily.success
    # one dbt invocation per backfill: one step ran for the whole range
    assert len([e for e in hourly.all_events if e.event_type_value == "STEP_START"]) == 1
    assert len(hourly.get_asset_materialization_events()) == 72 * 3  # hourly pass, hourly mart, dimensions
    for name, keys in names.items():
        assert table(db, name, keys) == rebuilt[name], name


def test_schedules_request_the_partition_that_just_closed(defs):
    hourly = defs.resolve_schedule_def("hourly_usage_schedule")
    daily = defs.resolve_schedule_def("daily_usage_schedule")
    assert hourly.cron_schedule == "7 * * * *" and daily.cron_schedule == "20 0 * * *"
    assert hourly.default_status == dg.DefaultScheduleStatus.RUNNING
    tick = dt.datetime(2026, 11, 27, 14, 7, tzinfo=UTC)
    requests = hourly.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick)).run_requests
    assert [r.partition_key for r in requests] == ["2026-11-27-13:00"]
    tick = dt.datetime(2026, 11, 28, 0, 20, tzinfo=UTC)
    requests = daily.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick)).run_requests
    assert [r.partition_key for r in requests] == ["2026-11-27"]


def test_hourly_schedule_run_includes_the_lookback(db):
    from orchestration.defs.partitions import hourly_partitions, rebuild_vars

    window = hourly_partitions.time_window_for_partition_key("2026-11-27-13:00")
    assert json.loads(rebuild_vars(window, 3)) == {"start": "2026-11-27T10:00", "end": "2026-11-27T14:00"}


def test_hit_rate_drop_check_fires_on_a_drop_and_stays_quiet_otherwise(make_db):
    from orchestration.defs.checks import hit_rate_drops

    db = make_db("wl_test_hit_rate")
    today = db.now().astimezone(UTC).date()
    steady, dropping = uuid.UUID(int=1), uuid.UUID(int=2)
    rows = []
    for days_ago in range(1, 9):
        day = dt.datetime.combine(today - dt.timedelta(days=days_ago), dt.time(12), UTC)
        for project, rate in ((steady, 0.4), (dropping, 0.1 if days_ago == 1 else 0.5)):
            for i in range(200):
                rows.append(request(project, day + dt.timedelta(seconds=i), cached=i < 200 * rate))
    db.cli("generate", "--rows", "0", "--allow-external")  # creates usage_logs
    insert_rows(db, rows)
    db.build_models()
    with db.connect() as conn, conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
        drops = hit_rate_drops(cur)
    assert [p for p, _, _ in drops] == [dropping]
    assert float(drops[0][1]) == 10.0 and float(drops[0][2]) == 50.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_serves_the_asset_graph_over_graphql(tmp_path):
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    webserver = subprocess.Popen(
        [
            os.path.join(os.path.dirname(sys.executable), "dagster-webserver"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-m",
            "orchestration.definitions",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        query = json.dumps({"query": "{ assetNodes { assetKey { path } } }"}).encode()
        deadline = time.monotonic() + 120
        while True:
            try:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/graphql", data=query, headers={"Content-Type": "application/json"}
                )
                body = json.loads(urllib.request.urlopen(req, timeout=5).read())
                if body.get("data", {}).get("assetNodes"):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "dagster-webserver did not answer in 120 s"
            time.sleep(1)
        names = {node["assetKey"]["path"][-1] for node in body["data"]["assetNodes"]}
        assert names >= CONTRACT_TABLES and "usage_logs" in names
    finally:
        webserver.terminate()
        webserver.wait(timeout=30)
