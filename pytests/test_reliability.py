"""Re-running is safe: two builds at once, and a build killed half-way, leave every aggregate correct."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from conftest import (
    BUILD_TIMEZONE,
    GRAINS,
    REPO,
    SEED,
    assert_matches_raw,
    insert_rows,
    raw_rows,
    request,
    row_matches,
    table,
)
from reference import compute, load_prices


def start_dbt(db, *args: str) -> subprocess.Popen:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PG")}, **db.env, "PGTZ": BUILD_TIMEZONE}
    return subprocess.Popen(
        [sys.executable, "-m", "orchestration.cli", "dbt", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


@pytest.fixture(scope="module")
def db(make_db):
    db = make_db("wl_test_reliability")
    db.generate(rows=20000, days=4, projects=10, seed=8)
    db.build_models()
    return db


def late_rows(db, count: int) -> list[dict]:
    project = uuid.uuid4()
    now = db.now()
    # all inside the lookback window (the newest hour and the 3 before it), whatever the minute now is
    return [request(project, now - dt.timedelta(minutes=2 * i + 1), cached=i % 3 == 0) for i in range(count)]


def test_two_builds_at_once_count_every_row_once(db):
    insert_rows(db, late_rows(db, 30))
    first = start_dbt(db, "run", "--select", "int_usage_hourly_by_model+", "--exclude", "get_dashboard_stats")
    second = start_dbt(db, "run", "--select", "int_usage_hourly_by_model+", "--exclude", "get_dashboard_stats")
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    assert_matches_raw(db)


def test_a_build_killed_half_way_leaves_old_or_new_buckets_and_the_next_build_heals(db):
    before = {name: table(db, name, keys) for name, (keys, _) in GRAINS.items()}
    insert_rows(db, late_rows(db, 40))
    for delay in (2.0, 4.0, 6.0):
        process = start_dbt(db, "run")
        time.sleep(delay)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        time.sleep(0.5)  # let the server notice the lost client and roll its transaction back
        reference = compute(raw_rows(db), load_prices(SEED), db.now())
        for name, (keys, attribute) in GRAINS.items():
            now_rows = table(db, name, keys)
            expected_new = getattr(reference, attribute)
            new_keys = {k for k in now_rows if k not in before[name] or now_rows[k] != before[name][k]}
            # every bucket is exactly as before, or exactly as a complete build makes it
            for key in new_keys:
                assert key in expected_new and row_matches(now_rows[key], expected_new[key]), (name, key, delay)
    db.dbt("run")
    assert_matches_raw(db)
