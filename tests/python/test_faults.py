"""Faults the pipeline must survive (issue 5): a database restart mid-build, rows later than the
lookback, retention, and a price change. Every check compares with the independent reference."""

from __future__ import annotations

import csv
import datetime as dt
import time
import uuid
from decimal import Decimal

import psycopg
import pytest
from conftest import GRAINS, SEED, assert_matches_raw, assert_tables_equal, insert_rows, raw_rows, request, table
from reference import compute, load_prices
from test_reliability import start_dbt

from orchestration import database, reconcile


def snapshot(db) -> dict[str, dict]:
    return {name: table(db, name, keys) for name, (keys, _) in GRAINS.items()}


@pytest.fixture(scope="module")
def db(make_db):
    db = make_db("wl_test_faults")
    db.generate(rows=15000, days=6, projects=8, seed=21)
    db.build_models()
    return db


def test_database_restart_during_a_build_fails_clearly_and_the_next_build_heals(db):
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
        database._pg_ctl(["-w", "-m", "fast", "restart"])
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
    holder = psycopg.connect(**database._kwargs(db.env), autocommit=True)
    try:
        holder.execute("select pg_advisory_lock(hashtext('watchllm_analytics.analytics.int_usage_hourly_by_model'))")
        result = db.dbt("run", "--vars", '{lock_wait_timeout: "2s"}', check=False)
    finally:
        holder.close()
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
    from orchestration.checks import daily_matches_raw_rows

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
    lookback_env = {"WATCHLLM_LOOKBACK_HOURS": str(lookback)}
    run_vars = ("--vars", f"{{lookback_hours: {lookback}}}")
    assert db.cli("reconcile", "--days", "5", extra_env=lookback_env).returncode == 0
    late = newest - dt.timedelta(hours=lookback, minutes=50)
    insert_rows(db, [request(uuid.uuid4(), late)])
    db.dbt("run", *run_vars)  # the scheduled build: the row is older than its lookback
    report = db.cli("reconcile", "--days", "5", check=False, extra_env=lookback_env)
    assert report.returncode == 1, report.stdout + report.stderr
    assert str(late.astimezone(dt.UTC).date()) in report.stdout
    assert (newest - dt.timedelta(hours=lookback)).astimezone(dt.UTC).date() == late.astimezone(dt.UTC).date()
    db.cli("reconcile", "--days", "5", "--heal", extra_env=lookback_env)
    assert db.cli("reconcile", "--days", "5", extra_env=lookback_env).returncode == 0
    assert_matches_raw(db)


def test_reconcile_rejects_a_bad_window(db):
    result = db.cli("reconcile", "--days", "-3", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "1..366" in result.stderr


def test_retention_deletes_in_batches_and_aggregates_outlive_the_raw_rows(make_db):
    db = make_db("wl_test_retention")
    db.generate(rows=8000, days=8, projects=5, seed=31)
    db.build_models()
    before = snapshot(db)
    today = db.query("select (now() at time zone 'UTC')::date as d")[0]["d"]
    raw_cutoff = dt.datetime.combine(today - dt.timedelta(days=3), dt.time(), tzinfo=dt.UTC)
    hourly_cutoff = dt.datetime.combine(today - dt.timedelta(days=5), dt.time(), tzinfo=dt.UTC)

    dry = db.cli("retention", "--raw-days", "3", "--hourly-days", "5", "--daily-days", "forever", "--dry-run")
    assert "would delete" in dry.stdout
    assert db.query("select count(*) as n from public.usage_logs where created_at < %s", (raw_cutoff,))[0]["n"] > 0

    done = db.cli(
        "retention", "--raw-days", "3", "--hourly-days", "5", "--daily-days", "forever", "--batch-size", "300"
    )
    assert "public.usage_logs: deleted" in done.stdout
    assert db.query("select count(*) as n from public.usage_logs where created_at < %s", (raw_cutoff,))[0]["n"] == 0
    assert not db.query("select 1 from analytics.usage_aggregations_hourly where hour_start < %s", (hourly_cutoff,))
    assert table(db, "usage_aggregations_daily", ("project_id", "date")) == before["usage_aggregations_daily"]

    # Every command afterwards keeps the days whose raw rows are gone.
    db.dbt("build", "--full-refresh", "--exclude", "resource_type:test", "resource_type:unit_test")
    start = (today - dt.timedelta(days=20)).isoformat()
    rebuilt = db.cli("rebuild", "--start", start, "--end", (today + dt.timedelta(days=1)).isoformat())
    assert "no rows before" in rebuilt.stdout and "skipped" in rebuilt.stdout
    for name, (keys, _) in GRAINS.items():
        if name == "usage_aggregations_hourly":
            continue
        assert table(db, name, keys) == before[name], f"{name} changed after retention"
    hourly = table(db, "usage_aggregations_hourly", GRAINS["usage_aggregations_hourly"][0])
    kept = {k: v for k, v in before["usage_aggregations_hourly"].items() if k[1] >= hourly_cutoff}
    assert hourly == kept


def test_the_dagster_retention_job_applies_the_configured_policy(make_db, monkeypatch):
    db = make_db("wl_test_retention_job")
    db.generate(rows=3000, days=6, projects=3, seed=33)
    db.build_models()
    today = db.query("select (now() at time zone 'UTC')::date as d")[0]["d"]
    cutoff = dt.datetime.combine(today - dt.timedelta(days=2), dt.time(), tzinfo=dt.UTC)
    daily_before = table(db, "usage_aggregations_daily", ("project_id", "date"))
    for name, value in {**db.env, "WATCHLLM_RETAIN_HOURLY_DAYS": "2", "WATCHLLM_RETAIN_DAILY_DAYS": "forever"}.items():
        monkeypatch.setenv(name, value)
    from orchestration.retention_job import retention_job

    assert retention_job.execute_in_process().success
    assert (
        db.query("select count(*) as n from analytics.usage_aggregations_hourly where hour_start < %s", (cutoff,))[0][
            "n"
        ]
        == 0
    )
    assert db.query("select count(*) as n from analytics.usage_aggregations_hourly")[0]["n"] > 0
    assert table(db, "usage_aggregations_daily", ("project_id", "date")) == daily_before
    assert db.query("select count(*) as n from public.usage_logs where created_at < %s", (cutoff,))[0]["n"] > 0


def test_retention_rejects_bad_periods(make_db):
    db = make_db("wl_test_retention_args")
    for flag, value in (("--raw-days", "0"), ("--hourly-days", "-5"), ("--daily-days", "ten")):
        result = db.cli("retention", flag, value, check=False)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("error: ") and result.stderr.strip().count("\n") == 0


def test_a_price_change_reprices_exactly_the_rows_it_covers(make_db, tmp_path):
    db = make_db("wl_test_reprice")
    db.generate(rows=8000, days=10, projects=5, seed=41)
    db.build_models()
    before = snapshot(db)

    # The edit: gpt-4o-mini's current period costs 3x from a date inside the data, as a new period.
    today = db.query("select (now() at time zone 'UTC')::date as d")[0]["d"]
    change_day = today - dt.timedelta(days=4)
    with SEED.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames, list(reader)
    edited, found = [], False
    for row in rows:
        if row["provider"] == "openai" and row["model"] == "gpt-4o-mini" and not row["valid_to"]:
            found = True
            edited.append({**row, "valid_to": change_day.isoformat()})
            edited.append(
                {
                    **row,
                    "valid_from": change_day.isoformat(),
                    "input_usd_per_1m": str(Decimal(row["input_usd_per_1m"]) * 3),
                    "output_usd_per_1m": str(Decimal(row["output_usd_per_1m"]) * 3),
                }
            )
        else:
            edited.append(row)
    assert found
    new_seed = tmp_path / "model_pricing.csv"
    with new_seed.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(edited)
    # `dbt seed` of the edited file, done directly so the repository's seed stays as it is
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("truncate analytics.model_pricing")
        with cur.copy(
            f"copy analytics.model_pricing ({', '.join(fields)}) from stdin with (format csv, header)"
        ) as copy:
            copy.write(new_seed.read_bytes())

    # The documented re-aggregation step: rebuild the days the changed periods cover.
    db.cli("rebuild", "--start", change_day.isoformat(), "--end", (today + dt.timedelta(days=1)).isoformat())

    reference = compute(raw_rows(db), load_prices(new_seed), db.now())
    for name, (keys, attribute) in GRAINS.items():
        assert_tables_equal(table(db, name, keys), getattr(reference, attribute), name)
    after = snapshot(db)["usage_by_model_daily"]
    moved = {k for k in after if after[k] != before["usage_by_model_daily"].get(k)}
    assert moved, "the price change re-priced nothing: the test data has no list-priced gpt-4o-mini rows"
    assert all(k[3] == "gpt-4o-mini" and k[1] >= change_day for k in moved), sorted(moved, key=str)[:5]


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
