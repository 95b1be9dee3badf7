"""The scheduled build reads only its window, tests included; the deep check reads all of history.

History outside the window is broken on purpose (duplicated ids, an aggregate with impossible
figures): the scheduled `dbt build` passes without reading it, the deep check finds every break.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import pytest
from conftest import assert_matches_raw, insert_rows, raw_rows, request

from orchestration import settings


def tuples_read(db, table: str) -> dict:
    """What every backend has read from `table` so far (pg_stat_user_tables, flushed at disconnect).

    A backend flushes its counters while it exits, which can be after its client has closed the
    connection: wait until no other backend of this database is left, or an earlier query's scan
    (the fixture's own count(*)) could land in the next reading."""
    schema, name = table.split(".")
    with db.connect() as conn:
        for _ in range(100):
            others = conn.execute(
                "select count(*) as n from pg_stat_activity"
                " where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'"
            ).fetchone()["n"]
            if others == 0:
                break
            time.sleep(0.05)
        conn.execute("select pg_stat_clear_snapshot()")
        row = conn.execute(
            "select seq_scan, coalesce(seq_tup_read, 0) as seq_tup_read, coalesce(idx_tup_fetch, 0) as idx_tup_fetch"
            " from pg_stat_user_tables where schemaname = %s and relname = %s",
            (schema, name),
        ).fetchone()
    return {**row, "tuples": row["seq_tup_read"] + row["idx_tup_fetch"]}


@pytest.fixture(scope="module")
def broken_history(make_db):
    db = make_db("wl_test_scheduled_window")
    # ten days: the window (up to the two UTC days of the lookback, at the start of a day) stays a small part
    db.generate(rows=60_000, days=10, projects=12, seed=21)
    db.dbt("build")
    newest = db.query("select max(hour_start) as h from analytics.int_usage_hourly_by_model")[0]["h"]
    old_day = (newest - dt.timedelta(days=3)).astimezone(dt.UTC).date()
    with db.connect() as conn:
        # duplicated ids (the proxy's primary key dropped, as a broken migration would)
        conn.execute("alter table public.usage_logs drop constraint if exists usage_logs_pkey")
        duplicated = conn.execute(
            "insert into public.usage_logs select * from public.usage_logs"
            " where project_id is not null and created_at >= %s and created_at < %s + 1 order by id limit 25"
            " returning id",
            (old_day, old_day),
        ).fetchall()
        # an aggregate with impossible figures: more requests than that hour ever had
        conn.execute(
            "update analytics.int_usage_hourly_by_model set total_requests = total_requests + 1000"
            " where (project_id, hour_start, provider, model) in (select project_id, hour_start, provider, model"
            " from analytics.int_usage_hourly_by_model where hour_start >= %s and hour_start < %s + 1 limit 1)",
            (old_day, old_day),
        )
        conn.execute("analyze public.usage_logs")
    # one more hour of ordinary traffic, then the hourly build
    project = uuid.uuid4()
    now = db.now()
    insert_rows(db, [request(project, now - dt.timedelta(minutes=m)) for m in range(1, 60)])
    window_rows = db.query(
        "select count(*) as n from public.usage_logs where created_at >= %s",
        (newest - dt.timedelta(hours=settings.lookback_hours()),),
    )[0]["n"]
    total_rows = db.query("select count(*) as n from public.usage_logs")[0]["n"]
    before = tuples_read(db, "public.usage_logs")
    scheduled = db.dbt("build", check=False)
    after = tuples_read(db, "public.usage_logs")
    run_results = json.loads((db.last_target / "run_results.json").read_text())
    return db, scheduled, run_results, before, after, window_rows, total_rows, len(duplicated), old_day


def test_the_scheduled_build_passes_over_broken_history(broken_history):
    db, scheduled, run_results, *_ = broken_history
    assert scheduled.returncode == 0, scheduled.stdout[-4000:]
    broken = [r["unique_id"] for r in run_results["results"] if r["status"] in ("fail", "error")]
    assert not broken, broken
    tested = {r["unique_id"].split(".")[2] for r in run_results["results"] if r["unique_id"].startswith("test.")}
    assert "usage_logs_grain_is_unique" in tested and "assert_aggregates_never_exceed_kept_rows" in tested


def test_the_scheduled_build_reads_only_the_raw_rows_of_its_window(broken_history):
    _, _, _, before, after, window_rows, total_rows, _, _ = broken_history
    assert after["seq_scan"] == before["seq_scan"], "the scheduled build scanned all of usage_logs"
    read = after["tuples"] - before["tuples"]
    # about a dozen statements (the pass, the tests on the per-row views) each read the window once
    assert read <= 20 * window_rows, (read, window_rows)
    assert read < total_rows, (read, total_rows)
    assert window_rows * 20 < total_rows, "the history must dwarf the window for this test to mean anything"


def test_the_deep_check_finds_every_break_outside_the_window(broken_history):
    db, _, _, _, _, _, _, duplicated, old_day = broken_history
    assert duplicated == 25
    deep = db.cli("deep-check", check=False, extra_env={"PGTZ": "Pacific/Kiritimati"})
    assert deep.returncode != 0, deep.stdout[-3000:]
    results = json.loads((db.last_target / "run_results.json").read_text())["results"]
    failed = {r["unique_id"].split(".")[2] for r in results if r["status"] in ("fail", "error")}
    assert {
        "usage_logs_grain_is_unique",
        "stg_proxy__usage_logs_grain_is_unique",
        "int_usage_logs_validated_grain_is_unique",
        "assert_aggregates_never_exceed_kept_rows",
        "assert_daily_matches_hourly_by_model",
        "assert_hourly_matches_hourly_by_model",
    } <= failed, failed
    # and reconcile names the broken day
    report = db.cli("reconcile", "--days", "7", check=False)
    assert report.returncode == 1 and str(old_day) in report.stdout, report.stdout


def test_a_first_build_tests_all_of_history(make_db):
    """No window yet: the first build's tests read everything, so a bad row anywhere is reported."""
    db = make_db("wl_test_first_build_window")
    db.generate(rows=4000, days=4, projects=4, seed=3)
    old = db.now() - dt.timedelta(days=3)
    insert_rows(db, [request(uuid.uuid4(), old, tokens_input=-5)])  # quarantined, far outside any lookback
    db.dbt("build")
    results = json.loads((db.last_target / "run_results.json").read_text())["results"]
    quarantined = next(r for r in results if r["unique_id"].split(".")[2] == "warn_quarantined_rows")
    expected = db.query(
        "select count(*) as n from analytics.usage_logs_rejected where created_at is not null"
    )[0]["n"]
    assert quarantined["failures"] == expected
    assert_matches_raw(db, raw_rows(db))


def test_the_dagster_deep_check_job_fails_on_the_broken_history_and_lists_the_tests(broken_history, monkeypatch):
    db = broken_history[0]
    for name, value in db.env.items():
        monkeypatch.setenv(name, value)
    from orchestration.defs.jobs import deep_check_job
    from orchestration.defs.resources import dbt_resource

    result = deep_check_job.execute_in_process(resources={"dbt": dbt_resource()}, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    listed = failure.step_failure_data.user_failure_data.metadata["failed"].value
    assert "usage_logs_grain_is_unique" in listed and "assert_daily_matches_hourly_by_model" in listed


def test_the_scheduled_build_reads_only_the_window_days_of_the_per_model_daily_table(broken_history):
    """The marts rolled up from usage_by_model_daily (the daily mart, and the counterfactual's models
    of the month) read the days they rebuild by an index range on `date`, not every day of history.
    Sequential scans are off for this build, so that the test's small table is read as a large one
    is: by index range where the predicate allows one, in full where it does not. (The forecast
    reads the last 59 days of usage_aggregations_daily by design: a bounded read, not checked here.)"""
    db = broken_history[0]
    now = db.now()
    insert_rows(db, [request(uuid.uuid4(), now - dt.timedelta(minutes=m)) for m in range(1, 30)])
    table = "analytics.usage_by_model_daily"
    window_start = (now - dt.timedelta(hours=settings.lookback_hours() + 1)).astimezone(dt.UTC).date()
    window = db.query(f"select count(*) as n from {table} where date >= %s", (window_start,))[0]["n"]
    everything = db.query(f"select count(*) as n from {table}")[0]["n"]
    # the budget below must be far less than the old filter's four reads of the whole table
    assert 12 * (window + 20) < 3 * everything, "the history must dwarf the window for this test to mean anything"
    before = tuples_read(db, table)
    # (a small batch is merged into its table, as on a large table, rather than the table rewritten)
    db.cli("dbt", "build", "--vars", "{bucket_replace_rewrite_fraction: 1000}",
           extra_env={"PGTZ": "UTC", "PGOPTIONS": "-c enable_seqscan=off"})
    after = tuples_read(db, table)
    assert after["seq_scan"] == before["seq_scan"]
    read = after["tuples"] - before["tuples"]
    # the roll-up reads its batch four times (sums, sketches, the two maps), the month's models once,
    # the table's own replace once, the comparison that finds the first changed day once, and the
    # primary-key test the window once
    assert read <= 12 * (window + 20), (read, window, everything)
