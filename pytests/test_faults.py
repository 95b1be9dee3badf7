"""Faults the pipeline must survive (issue 5): a database restart mid-build, a build that waits too
long for another, rows later than the lookback. Every check compares with the independent reference.
Retention and price changes are in test_retention_and_repricing.py."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import uuid

import psycopg
import pytest
from conftest import (
    GRAINS,
    REPO,
    assert_matches_raw,
    fresh_database,
    insert_rows,
    request,
    run_while_a_table_is_locked,
    table,
)
from test_reliability import start_dbt

from orchestration.core import database, reconcile


def snapshot(db) -> dict[str, dict]:
    return {name: table(db, name, keys) for name, (keys, _) in GRAINS.items()}


@pytest.fixture(scope="module")
def db(make_db):
    db = make_db("wl_test_faults")
    db.generate(rows=15000, days=6, projects=8, seed=21)
    db.build_models()
    return db


@pytest.fixture(scope="module")
def own_server(tmp_path_factory):
    """A second embedded server, so restarting it cannot cut off tests running on other workers."""
    data = tmp_path_factory.mktemp("restart_server")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PG")}, "WATCHLLM_DATA_DIR": str(data)}

    def db_command(action: str) -> None:
        subprocess.run([sys.executable, "-m", "orchestration.cli", "db", action], cwd=REPO, env=env, check=True)

    db_command("start")
    try:
        yield data / "pg", database.embedded_status(data / "pg")
    finally:
        db_command("stop")


def test_database_restart_during_a_build_fails_clearly_and_the_next_build_heals(own_server):
    pgdata, server = own_server
    db = fresh_database(server, "wl_test_restart")
    db.generate(rows=4000, days=3, projects=5, seed=21)
    db.build_models()
    late = [request(uuid.uuid4(), db.now() - dt.timedelta(minutes=5 + i)) for i in range(20)]
    insert_rows(db, late)
    before = snapshot(db)
    # Hold the daily table's advisory lock so the build is caught inside that model's transaction.
    holder = psycopg.connect(**database._kwargs(db.env), autocommit=True)
    holder.execute("select pg_advisory_lock(hashtext('watchllm_analytics.analytics.usage_aggregations_daily'))")
    build = start_dbt(db, "run")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            waiting = db.query(
                "select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'"
                " and query like '%%pg_advisory_xact_lock%%'"
            )
            if waiting:
                break
            assert build.poll() is None, build.stdout.read()
            time.sleep(0.2)
        else:
            pytest.fail("the build never reached usage_aggregations_daily")
        database._pg_ctl(["-w", "-m", "fast", "restart"], pgdata=pgdata)
        output, _ = build.communicate(timeout=300)
    finally:
        if build.poll() is None:
            build.kill()
        holder.close()

    assert build.returncode != 0, output
    assert "terminating connection" in output or "server closed the connection" in output, output[-3000:]
    # The model caught by the restart rolled back as a whole: every daily bucket is as before.
    assert (
        table(db, "usage_aggregations_daily", GRAINS["usage_aggregations_daily"][0])
        == before["usage_aggregations_daily"]
    )
    db.dbt("run")
    assert_matches_raw(db)


def test_a_build_that_waits_too_long_for_another_gives_up_cleanly(db):
    before = snapshot(db)
    result = run_while_a_table_is_locked(db, "int_usage_hourly_by_model")
    assert result.returncode != 0
    assert "lock timeout" in result.stdout, result.stdout[-3000:]
    assert snapshot(db) == before
    db.dbt("run")
    assert_matches_raw(db)


def test_rows_later_than_the_lookback_are_reported_and_a_backfill_of_those_days_heals_them(db, monkeypatch):
    db.dbt("run")
    assert_matches_raw(db)
    late_day = (db.now() - dt.timedelta(days=2)).astimezone(dt.UTC).replace(hour=10, minute=30)
    insert_rows(db, [request(uuid.uuid4(), late_day + dt.timedelta(minutes=i), cached=i % 2 == 0) for i in range(7)])
    db.dbt("run")  # the scheduled build: its lookback does not reach two days back

    report = db.cli("reconcile", "--days", "5", check=False)
    assert report.returncode == 1, report.stdout + report.stderr
    assert str(late_day.date()) in report.stdout
    # The Dagster asset check reports the same day and says how to heal it.
    for name, value in db.env.items():
        monkeypatch.setenv(name, value)
    from orchestration.defs.checks import daily_matches_raw_rows

    result = daily_matches_raw_rows()
    assert not result.passed
    assert str(late_day.date()) in str(result.metadata["days"].value)
    assert "backfill daily_usage" in str(result.metadata["heal"].value)

    healed = db.cli("reconcile", "--days", "5", "--heal")
    assert "healed" in healed.stdout
    assert_matches_raw(db)
    assert db.cli("reconcile", "--days", "5").returncode == 0
    assert daily_matches_raw_rows().passed


def test_a_late_row_in_the_closed_hours_of_the_newest_day_is_reported(db):
    """The day the lookback starts in is part closed: a late row in its closed hours is not rebuilt
    by the next scheduled build, so reconcile must report that day now, not once the day is over."""
    db.dbt("run")
    newest = db.query("select max(hour_start) as h from analytics.int_usage_hourly_by_model")[0]["h"]
    # a lookback that does not start at midnight, so the newest day has closed hours
    lookback = 3 if (newest - dt.timedelta(hours=3)).astimezone(dt.UTC).hour != 0 else 4
    reconcile = ("reconcile", "--days", "5", "--lookback-hours", str(lookback))
    run_vars = ("--vars", f"{{lookback_hours: {lookback}}}")
    assert db.cli(*reconcile).returncode == 0
    late = newest - dt.timedelta(hours=lookback, minutes=50)
    insert_rows(db, [request(uuid.uuid4(), late)])
    db.dbt("run", *run_vars)  # the scheduled build: the row is older than its lookback
    report = db.cli(*reconcile, check=False)
    assert report.returncode == 1, report.stdout + report.stderr
    assert str(late.astimezone(dt.UTC).date()) in report.stdout
    assert (newest - dt.timedelta(hours=lookback)).astimezone(dt.UTC).date() == late.astimezone(dt.UTC).date()
    db.cli(*reconcile, "--heal")
    assert db.cli(*reconcile).returncode == 0
    assert_matches_raw(db)


def test_reconcile_rejects_a_bad_window(db):
    result = db.cli("reconcile", "--days", "-3", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "1..366" in result.stderr


def test_rebuild_rejects_bad_dates(db):
    result = db.cli("rebuild", "--start", "2026-13-01", "--end", "2026-12-01", check=False)
    assert result.returncode == 2 and "--start must be a date" in result.stderr
    result = db.cli("rebuild", "--start", "2026-12-02", "--end", "2026-12-01", check=False)
    assert result.returncode == 2 and "empty" in result.stderr


def test_reconcile_day_ranges_merge_consecutive_days():
    days = [dt.date(2026, 1, d) for d in (5, 3, 4, 9)]
    assert reconcile.day_ranges(days) == [
        (dt.date(2026, 1, 3), dt.date(2026, 1, 6)),
        (dt.date(2026, 1, 9), dt.date(2026, 1, 10)),
    ]
