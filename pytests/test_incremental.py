"""Incremental builds over time: catch-up after an outage, late rows, range rebuilds, retention."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from conftest import (
    GRAINS,
    assert_matches_raw,
    insert_rows,
    raw_rows,
    request,
    run_while_a_table_is_locked,
    table,
)

UTC = dt.UTC
LATE_PROJECT = uuid.UUID("1a7e0000-0000-0000-0000-000000000001")
INCREMENTAL_TABLES = ("int_usage_hourly_by_model", *GRAINS)


def table_oids(db) -> dict[str, int]:
    """Each incremental table's OID: a rewritten table (macros/incremental/bucket_replace.sql) gets a new one."""
    return {
        name: db.query("select %s::regclass::oid as oid", (f"analytics.{name}",))[0]["oid"]
        for name in INCREMENTAL_TABLES
    }


@pytest.fixture(scope="module")
def db(make_db):
    db = make_db("wl_test_incremental")
    now = db.now()
    # history up to 12 hours ago, built; then the proxy keeps logging while no build runs
    db.generate(rows=12000, days=6, projects=12, seed=3, end=(now - dt.timedelta(hours=12)).isoformat())
    db.build_models()
    db.generate(rows=3000, days=0.5, projects=12, seed=4, end=now.isoformat())
    return db


def test_first_build_after_an_outage_catches_up_by_itself(db):
    db.dbt("build")
    assert_matches_raw(db)


def test_late_rows_within_lookback_are_counted_once(db):
    now = db.now()
    newest = db.query("select max(hour_start) as h from analytics.usage_aggregations_hourly")[0]["h"]
    late = [request(LATE_PROJECT, newest - dt.timedelta(hours=2, minutes=m)) for m in (1, 2, 3)]
    late.append(request(LATE_PROJECT, now - dt.timedelta(minutes=1), cached=True, cost_usd=0))
    insert_rows(db, late)
    oids = table_oids(db)
    db.dbt("run")
    assert_matches_raw(db)
    db.dbt("run")  # and once more: nothing doubles
    assert_matches_raw(db)
    # a few hours of a week's history: their buckets are deleted and inserted, the tables stay
    assert table_oids(db)["int_usage_hourly_by_model"] == oids["int_usage_hourly_by_model"]


DAILY_CONSUMERS = ("usage_aggregations_daily", "usage_by_model_daily")
# the consumers of int_usage_hourly_by_model; usage_aggregations_daily reads usage_by_model_daily,
# and the monthly marts read usage_aggregations_daily
HOURLY_CONSUMERS = (
    "usage_by_model_daily",
    "usage_aggregations_hourly",
    "usage_aggregations_local_daily",
    "int_usage_daily_by_tier_and_band",
)
MONTHLY_CONSUMERS = ("project_savings_monthly", "model_cost_counterfactual_monthly")
# the consumer of int_usage_hourly_by_dimension (empty here: these logs have no keys, users or tags)
DIMENSION_CONSUMERS = ("usage_by_dimension_daily",)


def row_versions(db, name: str) -> dict[tuple, str]:
    """xmin of every row: a row the build deleted and inserted again gets a new one."""
    return {
        (r["project_id"], r["date"], r["k"]): r["v"]
        for r in db.query(
            f"select project_id, date, {'provider || model' if 'model' in name else chr(39) + chr(39)} as k,"
            f" xmin::text as v from analytics.{name}"
        )
    }


def run_range(db, start: dt.date, end: dt.date, *models: str) -> None:
    db.dbt("run", "--select", *models, "--vars", f"{{start: '{start}', end: '{end}'}}")


def pending_from(db) -> dict[str, dt.datetime | None]:
    rows = db.query("select consumer, pending_from from analytics.watchllm_pending_rebuilds")
    return {r["consumer"]: r["pending_from"] for r in rows}


def test_a_scheduled_build_rebuilds_only_the_days_whose_hours_changed(db):
    db.dbt("run")
    newest = db.query("select max(hour_start) as h from analytics.int_usage_hourly_by_model")[0]["h"]
    first_rebuilt_day = (newest - dt.timedelta(hours=3)).astimezone(UTC).date()  # the hourly window
    insert_rows(db, [request(LATE_PROJECT, newest - dt.timedelta(hours=1, minutes=7))])
    before = {name: row_versions(db, name) for name in DAILY_CONSUMERS}
    # Replace buckets by delete + insert only: a table rewrite (macros/incremental/bucket_replace.sql, chosen
    # when the batch has >= 25% of the table's pages, which on these tiny tables depends on their
    # dead rows and on the hour of day) gives the rows it keeps new xmins too (failed CI once).
    db.dbt("run", "--vars", "{bucket_replace_rewrite_fraction: 2}")
    assert_matches_raw(db)
    for name in DAILY_CONSUMERS:
        after = row_versions(db, name)
        changed_days = {key[1] for key, version in after.items() if before[name].get(key) != version}
        assert changed_days, name
        # a daily model does not re-read a day none of whose hours were replaced (it used to
        # rebuild the day before its newest day on every run)
        assert min(changed_days) >= first_rebuilt_day, (name, sorted(changed_days), first_rebuilt_day)
    assert set(pending_from(db).values()) == {dt.datetime(9999, 12, 31, tzinfo=UTC)}
    assert set(pending_from(db)) == {*HOURLY_CONSUMERS, *DAILY_CONSUMERS, *MONTHLY_CONSUMERS, *DIMENSION_CONSUMERS}


def hourly_row_versions(db) -> dict[tuple, str]:
    return {
        (r["project_id"], r["hour_start"]): r["v"]
        for r in db.query("select project_id, hour_start, xmin::text as v from analytics.usage_aggregations_hourly")
    }


def test_the_marts_rebuild_from_the_first_hour_whose_rows_changed(db):
    """The pass re-aggregates its whole lookback window, but marks for the marts only the hours whose
    rows it changes (macros/incremental/pending_rebuilds.sql): added, removed or different."""
    db.dbt("run")
    no_rewrite = "{bucket_replace_rewrite_fraction: 2}"  # delete + insert only (see the test above)
    newest = db.query("select max(hour_start) as h from analytics.int_usage_hourly_by_model")[0]["h"]
    changed_hour = newest - dt.timedelta(hours=1)
    # 1. nothing new: the pass rewrites its window, no mart rebuilds a row
    before_hours, before_days = hourly_row_versions(db), row_versions(db, "usage_by_model_daily")
    db.dbt("run", "--vars", no_rewrite)
    assert hourly_row_versions(db) == before_hours
    assert row_versions(db, "usage_by_model_daily") == before_days
    assert set(pending_from(db).values()) == {dt.datetime(9999, 12, 31, tzinfo=UTC)}
    # 2. late rows of two models in the hour before the newest: the hours before it stay as they are
    late = [
        request(LATE_PROJECT, changed_hour + dt.timedelta(minutes=5), model="gpt-4o-mini"),
        request(LATE_PROJECT, changed_hour + dt.timedelta(minutes=6), model="gpt-4o"),
    ]
    insert_rows(db, late)
    before_hours = hourly_row_versions(db)
    db.dbt("run", "--vars", no_rewrite)
    assert_matches_raw(db)
    after_hours = hourly_row_versions(db)
    rebuilt = {key[1] for key, version in after_hours.items() if before_hours.get(key) != version}
    assert (LATE_PROJECT, changed_hour) in after_hours and changed_hour in rebuilt
    assert min(rebuilt) == changed_hour, sorted(rebuilt)  # not newest - lookback_hours, the window's start
    # 3. one model's rows of that hour gone (its int row disappears from a bucket that stays): noticed too
    with db.connect() as conn:
        deleted = conn.execute(
            "delete from public.usage_logs where project_id = %s and model = 'gpt-4o' and created_at >= %s"
            " and created_at < %s",
            (LATE_PROJECT, changed_hour, changed_hour + dt.timedelta(hours=1)),
        ).rowcount
    assert deleted >= 1
    db.dbt("run", "--vars", no_rewrite)
    assert_matches_raw(db)
    assert set(pending_from(db).values()) == {dt.datetime(9999, 12, 31, tzinfo=UTC)}


def test_buckets_replaced_while_a_mart_did_not_run_are_rebuilt_by_its_next_run(db):
    # 1. the hourly model alone rebuilds a day four days back (as a Dagster hourly partition does)
    day = (db.now() - dt.timedelta(days=4)).astimezone(UTC).date()
    insert_rows(db, [request(LATE_PROJECT, dt.datetime.combine(day, dt.time(9, m), UTC)) for m in range(3)])
    run_range(db, day, day + dt.timedelta(days=1), "int_usage_hourly_by_model")
    midnight, nothing = dt.datetime.combine(day, dt.time(), UTC), dt.datetime(9999, 12, 31, tzinfo=UTC)
    assert pending_from(db) == {
        **dict.fromkeys(HOURLY_CONSUMERS, midnight),
        "usage_aggregations_daily": nothing,  # its producer, usage_by_model_daily, has not run
        **dict.fromkeys(MONTHLY_CONSUMERS, nothing),
        **dict.fromkeys(DIMENSION_CONSUMERS, nothing),  # its producer has not run
    }
    # 2. a range rebuild of the daily models that does not reach the newest hour leaves the mark
    run_range(db, day - dt.timedelta(days=1), day + dt.timedelta(days=1), *DAILY_CONSUMERS)
    assert pending_from(db) == {
        **dict.fromkeys(HOURLY_CONSUMERS, midnight),  # not cleared: the range ends before the newest hour
        # marked by the range rebuilds of usage_by_model_daily and usage_aggregations_daily, a day earlier
        "usage_aggregations_daily": midnight - dt.timedelta(days=1),
        **dict.fromkeys(MONTHLY_CONSUMERS, midnight - dt.timedelta(days=1)),
        **dict.fromkeys(DIMENSION_CONSUMERS, nothing),
    }
    # 3. a scheduled build in which one daily model fails (it waits too long for a lock) ...
    insert_rows(db, [request(LATE_PROJECT, dt.datetime.combine(day, dt.time(11), UTC))])
    run_range(db, day, day + dt.timedelta(days=1), "int_usage_hourly_by_model")
    failed = run_while_a_table_is_locked(db, "usage_aggregations_daily")
    assert failed.returncode != 0 and "lock timeout" in failed.stdout, failed.stdout[-2000:]
    assert pending_from(db) == {
        "usage_aggregations_daily": midnight - dt.timedelta(days=1),  # failed: its mark is kept
        **dict.fromkeys(MONTHLY_CONSUMERS, midnight - dt.timedelta(days=1)),  # skipped (parent failed): kept
        "usage_by_model_daily": nothing,
        "usage_aggregations_hourly": nothing,
        "usage_aggregations_local_daily": nothing,
        "int_usage_daily_by_tier_and_band": nothing,
        **dict.fromkeys(DIMENSION_CONSUMERS, nothing),
    }
    # 4. ... and the next scheduled build, whose own lookback is hours, rebuilds that day too
    db.dbt("run")
    assert_matches_raw(db)
    assert set(pending_from(db).values()) == {dt.datetime(9999, 12, 31, tzinfo=UTC)}


def test_marts_catch_up_when_their_producer_table_is_dropped_and_built_anew(db):
    db.dbt("run")
    newest = db.query("select max(hour_start) as h from analytics.int_usage_hourly_by_model")[0]["h"]
    insert_rows(db, [request(LATE_PROJECT, newest - dt.timedelta(hours=1, minutes=m)) for m in (11, 12)])
    with db.connect() as conn:
        conn.execute("drop table analytics.int_usage_hourly_by_model")
    db.dbt("run")  # creates it from all raw rows: no bucket_replace, so no mark
    assert_matches_raw(db)
    assert set(pending_from(db).values()) == {dt.datetime(9999, 12, 31, tzinfo=UTC)}


def test_rows_older_than_lookback_wait_for_a_range_rebuild(db):
    day = (db.now() - dt.timedelta(days=3)).astimezone(UTC).date()
    old_hour = dt.datetime.combine(day, dt.time(5), UTC)
    insert_rows(db, [request(LATE_PROJECT, old_hour + dt.timedelta(minutes=m)) for m in range(4)])

    db.dbt("build")
    counted = db.query(
        "select coalesce(sum(total_requests), 0) as n from analytics.usage_aggregations_hourly"
        " where project_id = %s and hour_start = %s",
        (LATE_PROJECT, old_hour),
    )[0]["n"]
    assert counted == 0  # outside the lookback: the scheduled build does not rescan old hours
    deep = db.cli("deep-check")  # the daily deep check reads all of history and reports the late rows
    assert re.search(r"WARN \d+ assert_aggregates_include_every_kept_row", deep.stdout), deep.stdout[-3000:]

    db.dbt("build", "--vars", f"{{start: '{day}', end: '{day + dt.timedelta(days=1)}'}}")
    assert_matches_raw(db)


def test_range_rebuild_with_timestamps_replaces_whole_buckets(db):
    before = table(db, "usage_aggregations_hourly", GRAINS["usage_aggregations_hourly"][0])
    start = (db.now() - dt.timedelta(days=2)).astimezone(UTC).replace(minute=30, second=0, microsecond=0)
    db.dbt(
        "run", "--vars", f"{{start: '{start:%Y-%m-%dT%H:%M}', end: '{start + dt.timedelta(hours=5):%Y-%m-%dT%H:%M}'}}"
    )
    assert table(db, "usage_aggregations_hourly", GRAINS["usage_aggregations_hourly"][0]) == before
    assert_matches_raw(db)


def test_bad_range_vars_fail_with_a_clear_message(db):
    result = db.dbt("run", "--vars", "{start: 'yesterday; drop table x', end: '2026-01-01'}", check=False)
    assert result.returncode != 0
    assert "must be a UTC date or timestamp" in result.stdout
    result = db.dbt("run", "--vars", "{start: '2026-01-01'}", check=False)
    assert "set both vars 'start' and 'end'" in result.stdout


def test_retention_then_build_full_refresh_and_rebuild_keep_history(db):
    raw_before = raw_rows(db)
    aggregates_before = {name: table(db, name, keys) for name, (keys, _) in GRAINS.items()}
    cutoff = dt.datetime.combine((db.now() - dt.timedelta(days=2)).astimezone(UTC).date(), dt.time(), UTC)
    with db.connect() as conn:
        deleted = conn.execute("delete from public.usage_logs where created_at < %s", (cutoff,)).rowcount
    assert deleted > 0

    db.dbt("build")
    db.dbt("build", "--full-refresh")
    db.dbt("run", "--vars", f"{{start: '{cutoff - dt.timedelta(days=10):%Y-%m-%d}', end: '{cutoff:%Y-%m-%d}'}}")
    # a range rebuild of everything, with every table rewritten instead of deleted and inserted
    # into: the days whose raw rows are gone are copied over, the others rebuilt
    oids = table_oids(db)
    tomorrow = (db.now() + dt.timedelta(days=1)).astimezone(UTC).date()
    first = cutoff - dt.timedelta(days=10)
    db.dbt("run", "--vars", f"{{start: '{first:%Y-%m-%d}', end: '{tomorrow}', bucket_replace_rewrite_fraction: 0}}")
    rewritten = table_oids(db)
    assert all(rewritten[name] != oids[name] for name in INCREMENTAL_TABLES), (oids, rewritten)
    for name, (keys, _) in GRAINS.items():
        assert table(db, name, keys) == aggregates_before[name], name
    assert_matches_raw(db, raw_before)  # still equal to the rows as they were before retention


def test_a_double_insert_into_an_aggregate_fails_loudly(db):
    import psycopg

    with db.connect() as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "insert into analytics.usage_aggregations_daily select * from analytics.usage_aggregations_daily limit 1"
        )


def test_running_one_upstream_view_keeps_every_dependent_view_and_the_function(db):
    db.dbt("run", "--select", "stg_proxy__usage_logs", "int_usage_logs_validated")
    present = db.query("""
        select to_regclass('analytics.int_usage_logs_priced') is not null as priced,
               to_regclass('analytics.usage_logs_rejected') is not null as rejected
    """)[0]
    assert present == {"priced": True, "rejected": True}
    rows = db.query("select * from public.get_dashboard_stats('1a7e0000-0000-0000-0000-000000000001', 2)")
    assert len(rows) == 2
