"""Maintenance never loses an aggregate, upgrades are one command, and any source shape the contract
allows builds (docs/contract.md, section 16; docs/production.md, "Retention" and "Upgrading").

- Retention killed with SIGKILL at several moments leaves every UTC day of usage_logs whole or gone;
  reconcile --heal, a range rebuild and a complete retention run afterwards leave every aggregate
  bucket as it was.
- A database built by the first release (commit dbbb545, from a git worktree) upgrades with
  `watchllm-analytics upgrade` to exactly a fresh build: every table, percentiles included, the
  contracts' constraints and indexes, and the three-argument dashboard.
- A usage_logs with extra columns of any type builds with the cron line.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from conftest import GRAINS, REPO, assert_matches_raw, table

from orchestration import settings
from orchestration.core import database

UTC = dt.UTC
CRON_BUILD = ("build", "--quiet", *settings.PRODUCTION_DBT_ARGS)
AGGREGATES = {
    **{name: keys for name, (keys, _) in GRAINS.items()},
    "int_usage_hourly_by_model": ("project_id", "hour_start", "provider", "model"),
    "model_cost_counterfactual_monthly": ("project_id", "month", "provider", "model"),
}


def snapshot(db) -> dict[str, dict]:
    return {name: table(db, name, keys) for name, keys in AGGREGATES.items()}


def raw_days(db) -> dict[dt.date, int]:
    rows = db.query(
        "select (created_at at time zone 'UTC')::date as day, count(*) as n from public.usage_logs"
        " where created_at is not null group by 1"
    )
    return {r["day"]: r["n"] for r in rows}


def start_retention(db, *args: str) -> subprocess.Popen:
    env = {**os.environ, **db.env}
    return subprocess.Popen(
        [sys.executable, "-m", "orchestration.cli", "retention", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_while_deleting(db, day: dt.date, args: tuple[str, ...]) -> None:
    """SIGKILL a retention run while it waits to delete `day` (the test holds that day's rows)."""
    holder = psycopg.connect(**database._kwargs(db.env))
    try:
        start = dt.datetime.combine(day, dt.time(), UTC)
        holder.execute(
            "select 1 from public.usage_logs where created_at >= %s and created_at < %s for update",
            (start, start + dt.timedelta(days=1)),
        )
        process = start_retention(db, *args)
        deadline = time.monotonic() + 60
        while True:
            blocked = db.query(
                "select pid from pg_stat_activity where %s = any(pg_blocking_pids(pid))", (holder.info.backend_pid,)
            )
            if blocked:
                break
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "retention never reached the held day"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        # the server notices a dead client only when it next talks to it: end the backend as it would
        db.query("select pg_terminate_backend(%s)", (blocked[0]["pid"],))
    finally:
        holder.rollback()
        holder.close()


def assert_days_whole_or_gone(db, original: dict[dt.date, int]) -> None:
    now = raw_days(db)
    assert all(now.get(day) in (None, count) for day, count in original.items()), "a day was left partly deleted"
    gone = sorted(day for day in original if day not in now)
    assert gone == sorted(original)[: len(gone)], "retention deletes the oldest days first"
    mark = db.query("select retained_from from analytics.watchllm_table_bounds where table_name = 'usage_logs'")
    if gone:
        assert mark[0]["retained_from"] == dt.datetime.combine(gone[-1] + dt.timedelta(days=1), dt.time(), UTC)


def test_retention_killed_anywhere_leaves_every_day_whole_and_every_aggregate_as_it_was(make_db):
    db = make_db("wl_test_retention_kill")
    db.generate(rows=12000, days=14, projects=4, seed=71)
    db.dbt(*CRON_BUILD)
    before = snapshot(db)
    original = raw_days(db)
    today = db.query("select (now() at time zone 'UTC')::date as d")[0]["d"]
    doomed = sorted(day for day in original if day < today - dt.timedelta(days=10))
    assert len(doomed) >= 4, doomed
    args = ("--raw-days", "10", "--hourly-days", "forever", "--daily-days", "forever")

    # killed while deleting the first, a middle and the last doomed day (each in its own transaction)
    for day in (doomed[0], doomed[len(doomed) // 2], doomed[-1]):
        kill_while_deleting(db, day, args)
        assert_days_whole_or_gone(db, original)
        assert raw_days(db).get(day) == original[day]
    # and at whatever moment a timer hits
    rnd = random.Random(5)
    for _ in range(3):
        process = start_retention(db, *args)
        time.sleep(rnd.uniform(0.2, 1.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert_days_whole_or_gone(db, original)

    # later ordinary commands never replace a bucket of a day retention touched
    db.cli("reconcile", "--days", "30", "--heal", check=False)
    db.cli("rebuild", "--start", (today - dt.timedelta(days=30)).isoformat(), "--end", today.isoformat())
    db.cli("retention", *args)
    assert_days_whole_or_gone(db, original)
    assert set(raw_days(db)) == {day for day in original if day not in doomed}
    db.dbt(*CRON_BUILD)
    assert snapshot(db) == before


# -- upgrades ----------------------------------------------------------------------------------------

FIRST_RELEASE = "dbbb545"


def build_with_first_release(db, tmp_path: Path) -> None:
    """`dbt build` with the first release's own models, from a git worktree of its commit."""
    if (
        shutil.which("git") is None
        or subprocess.run(
            ["git", "cat-file", "-e", f"{FIRST_RELEASE}^{{commit}}"], cwd=REPO, capture_output=True
        ).returncode
    ):
        pytest.fail(f"the first release, commit {FIRST_RELEASE}, is not in this clone's history (a shallow clone?)")
    worktree = tmp_path / "first-release"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(worktree), FIRST_RELEASE], cwd=REPO, check=True, capture_output=True
    )
    try:
        env = {
            **os.environ,
            **db.env,
            "DBT_TARGET_PATH": str(tmp_path / "first-release-target"),
            "DBT_LOG_PATH": str(tmp_path / "first-release-logs"),
        }
        dbt = Path(sys.executable).with_name("dbt")
        built = subprocess.run(
            [str(dbt), "build", "--exclude", "resource_type:unit_test"],
            cwd=worktree,
            env=env,
            capture_output=True,
            text=True,
        )
        assert built.returncode == 0, built.stdout[-3000:]
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=REPO, capture_output=True)


def contract_shape(db) -> dict:
    """Every analytics table's columns (type, not null), check constraints and index key lists."""
    columns = db.query(
        "select c.relname as t, a.attname as c, format_type(a.atttypid, a.atttypmod) as type, a.attnotnull as nn"
        " from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'analytics' and c.relkind = 'r' and a.attnum > 0 and not a.attisdropped"
    )
    checks = db.query(
        "select c.relname as t, pg_get_constraintdef(k.oid) as definition from pg_constraint k"
        " join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'analytics' and k.contype = 'c'"
    )
    indexes = db.query(
        "select c.relname as t, i.indisunique as u,"
        " (select array_agg(a.attname order by k.o) from unnest(i.indkey::int2[]) with ordinality as k(n, o)"
        "  join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.n) as cols"
        " from pg_index i join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'analytics'"
    )
    return {
        "columns": {(r["t"], r["c"]): (r["type"], r["nn"]) for r in columns},
        "checks": sorted((r["t"], r["definition"]) for r in checks),
        "indexes": sorted((r["t"], r["u"], tuple(r["cols"])) for r in indexes),
    }


def test_a_database_of_the_first_release_upgrades_to_exactly_a_fresh_build(make_db, tmp_path):
    end = "2026-12-01T12:00"  # the same rows in both databases
    old, fresh = make_db("wl_test_upgrade_old"), make_db("wl_test_upgrade_fresh")
    for db in (old, fresh):
        db.generate(rows=15000, days=12, projects=6, seed=81, end=end)
    build_with_first_release(old, tmp_path)
    before = old.query("select count(*) as n from analytics.usage_aggregations_hourly")[0]["n"]

    upgraded = old.cli("upgrade")
    assert "upgraded to" in upgraded.stdout, upgraded.stdout
    fresh.dbt(*CRON_BUILD)
    for name, keys in {**AGGREGATES, "usage_aggregations_local_daily": ("project_id", "time_zone", "date")}.items():
        assert table(old, name, keys) == table(fresh, name, keys), f"{name} differs from a fresh build"
    assert old.query("select count(*) as n from analytics.usage_aggregations_hourly")[0]["n"] == before
    old_shape, fresh_shape = contract_shape(old), contract_shape(fresh)
    for part in ("checks", "indexes"):  # an index of the first release may remain beside them
        assert set(fresh_shape[part]) <= set(old_shape[part]), (part, set(fresh_shape[part]) - set(old_shape[part]))
    assert len(old_shape["checks"]) == len(set(old_shape["checks"])) == len(fresh_shape["checks"])
    contract_columns = {
        key: value for key, value in fresh_shape["columns"].items() if not key[0].startswith("watchllm")
    }
    assert {k: old_shape["columns"].get(k) for k in contract_columns} == contract_columns
    assert_matches_raw(old)
    project = old.query("select project_id from analytics.usage_aggregations_daily limit 1")[0]["project_id"]
    for zone in ("UTC", "Asia/Kathmandu"):
        call = "select * from public.get_dashboard_stats(%s, 40, %s)"
        assert old.query(call, (project, zone)) == fresh.query(call, (project, zone)), zone
    assert old.query("select version from analytics.watchllm_schema_version")[0]["version"] == "0.2.0"
    # running it again changes nothing
    again = old.cli("upgrade")
    assert "added" not in again.stdout and table(old, "usage_aggregations_daily", ("project_id", "date")) == table(
        fresh, "usage_aggregations_daily", ("project_id", "date")
    )


def test_upgrade_never_rebuilds_a_day_an_earlier_retention_left_partly_deleted(make_db):
    db = make_db("wl_test_upgrade_partial_day")
    db.generate(rows=6000, days=6, projects=3, seed=83)
    db.dbt(*CRON_BUILD)
    before = snapshot(db)
    oldest = min(raw_days(db))
    # what an earlier release's batched retention left when it was killed: half of the oldest two days
    with db.connect() as conn:
        conn.execute(
            "delete from public.usage_logs where ctid = any(array(select ctid from public.usage_logs"
            " where created_at < %s and random() < 0.5))",
            (dt.datetime.combine(oldest + dt.timedelta(days=2), dt.time(), UTC),),
        )
    upgraded = db.cli("upgrade")
    assert f"raw rows of {oldest + dt.timedelta(days=1)} and before were partly deleted" in upgraded.stdout
    db.cli("reconcile", "--days", "30", "--heal", check=False)
    assert snapshot(db) == before


# -- any source shape -------------------------------------------------------------------------------


def test_a_usage_logs_with_extra_columns_of_any_type_builds_with_the_cron_line(make_db):
    db = make_db("wl_test_extra_columns")
    db.generate(rows=4000, days=3, projects=3, seed=85)
    with db.connect() as conn:
        conn.execute("create type public.request_kind as enum ('chat', 'embedding')")
        conn.execute("create domain public.positive_ms as integer check (value >= 0)")
        conn.execute(
            "alter table public.usage_logs"
            " add column tags text[] default array['a', 'b'],"
            " add column metadata jsonb default '{\"k\": [1, 2]}',"
            " add column kind public.request_kind default 'chat',"
            " add column queue_ms public.positive_ms default 3,"
            " add column total_tokens_generated bigint generated always as"
            " (coalesce(tokens_input, 0)::bigint + coalesce(tokens_output, 0)) stored,"
            " add column weights numeric[][] default '{{1,2},{3,4}}'"
        )
    built = db.dbt(*CRON_BUILD, check=False)
    assert built.returncode == 0, built.stdout[-3000:]
    assert_matches_raw(db)
    assert db.dbt(*CRON_BUILD, check=False).returncode == 0
