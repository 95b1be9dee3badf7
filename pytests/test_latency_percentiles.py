"""Latency p50/p95/p99 from the mergeable sketch: within max(1 ms, 1%) of percentile_disc at every grain."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import Counter

import pytest
from conftest import GRAINS, SEED, assert_dashboard_matches, assert_tables_equal, insert_rows, raw_rows, request, table
from reference import compute, load_prices

EDGE = uuid.UUID("1a7e0000-0000-0000-0000-00000000a7e1")


@pytest.fixture(scope="module")
def built(make_db):
    db = make_db("wl_test_percentiles")
    db.generate(rows=20_000, days=5, projects=10, seed=17)
    now = db.now()
    day_start = (now - dt.timedelta(days=2)).astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    hour = lambda h: day_start + dt.timedelta(hours=h)  # noqa: E731
    rows = [
        request(EDGE, hour(1) + dt.timedelta(minutes=5), latency_ms=1),  # a single-row bucket at 1 ms
        request(EDGE, hour(2) + dt.timedelta(minutes=5), latency_ms=600_000),  # a single 10-minute request
        *[request(EDGE, hour(3) + dt.timedelta(minutes=m), latency_ms=None) for m in range(3)],  # no latency known
        request(EDGE, hour(3) + dt.timedelta(minutes=9), latency_ms=-40),  # negative: unknown too
        # 99 ordinary requests and one huge outlier in one hour
        *[request(EDGE, hour(4) + dt.timedelta(seconds=20 * i), latency_ms=200 + i) for i in range(99)],
        request(EDGE, hour(4) + dt.timedelta(minutes=50), latency_ms=2_000_000_000),
        # one model name under two providers in the same hour (the maps and sketches merge by key)
        request(EDGE, hour(5), provider="groq", model="llama-3.3-70b-versatile", latency_ms=101),
        request(EDGE, hour(5), provider="together", model="llama-3.3-70b-versatile", latency_ms=99),
        # exact keys below 100 ms, log buckets above: neighbours of the boundary
        *[request(EDGE, hour(6) + dt.timedelta(seconds=i), latency_ms=v) for i, v in enumerate((99, 100, 101, 102))],
    ]
    insert_rows(db, rows)
    db.dbt("build")
    reference = compute(raw_rows(db), load_prices(SEED), db.now())
    return db, reference, hour


def test_every_bucket_of_every_grain_is_within_the_bound_of_percentile_disc(built):
    db, reference, _ = built
    for name, (keys, attribute) in GRAINS.items():
        assert_tables_equal(table(db, name, keys), getattr(reference, attribute), name)


def test_the_percentiles_equal_postgres_percentile_disc_within_the_bound(built):
    """A second, independent check: Postgres' own percentile_disc over the kept rows, per hour."""
    db, _, _ = built
    worst = db.query(
        """
        with exact as (
            select project_id, date_bin('1 hour', created_at, '2000-01-01 00:00+00') as hour_start,
                percentile_disc(0.5) within group (order by latency_ms) as p50,
                percentile_disc(0.95) within group (order by latency_ms) as p95,
                percentile_disc(0.99) within group (order by latency_ms) as p99
            from analytics.int_usage_logs_validated
            where is_kept and latency_ms is not null
            group by 1, 2
        )
        select count(*) as buckets,
            max(greatest(
                abs(a.latency_p50_ms - e.p50) / greatest(1, 0.01 * e.p50),
                abs(a.latency_p95_ms - e.p95) / greatest(1, 0.01 * e.p95),
                abs(a.latency_p99_ms - e.p99) / greatest(1, 0.01 * e.p99)
            )) as worst_share_of_bound
        from exact as e
        join analytics.usage_aggregations_hourly as a using (project_id, hour_start)
        """
    )[0]
    assert worst["buckets"] > 500 and worst["worst_share_of_bound"] <= 1, worst


def test_single_row_null_and_extreme_buckets(built):
    db, _, hour = built
    rows = {
        r["hour_start"]: r
        for r in db.query(
            "select hour_start, latency_p50_ms, latency_p95_ms, latency_p99_ms, latency_sketch"
            " from analytics.usage_aggregations_hourly where project_id = %s",
            (EDGE,),
        )
    }
    one_ms = rows[hour(1)]
    assert (one_ms["latency_p50_ms"], one_ms["latency_p95_ms"], one_ms["latency_p99_ms"]) == (1, 1, 1)
    ten_minutes = rows[hour(2)]
    assert abs(ten_minutes["latency_p99_ms"] - 600_000) <= 6_000
    unknown = rows[hour(3)]
    assert unknown["latency_p50_ms"] is None and unknown["latency_sketch"] is None
    outlier = rows[hour(4)]
    assert abs(outlier["latency_p99_ms"] - 298) <= 3, outlier  # rank 99 of 100: the outlier is rank 100
    assert abs(outlier["latency_p50_ms"] - 249) <= 2.5, outlier
    assert sum(json.loads(json.dumps(outlier["latency_sketch"])).values()) == 100
    boundary = rows[hour(6)]
    assert boundary["latency_p50_ms"] == 100  # exact below and at 100 ms


def test_daily_and_model_sketches_are_merges_of_the_hourly_ones(built):
    db, _, _ = built
    hourly: dict = {}
    for r in db.query("select project_id, hour_start, latency_sketch from analytics.usage_aggregations_hourly"):
        key = (r["project_id"], r["hour_start"].astimezone(dt.UTC).date())
        hourly.setdefault(key, Counter()).update({k: int(v) for k, v in (r["latency_sketch"] or {}).items()})
    daily = {
        (r["project_id"], r["date"]): Counter({k: int(v) for k, v in (r["latency_sketch"] or {}).items()})
        for r in db.query("select project_id, date, latency_sketch from analytics.usage_aggregations_daily")
    }
    assert daily == hourly
    by_model: dict = {}
    for r in db.query("select project_id, date, latency_sketch from analytics.usage_by_model_daily"):
        by_model.setdefault((r["project_id"], r["date"]), Counter()).update(
            {k: int(v) for k, v in (r["latency_sketch"] or {}).items()}
        )
    assert by_model == daily


def test_the_dashboard_reports_percentiles_of_each_day(built):
    db, reference, _ = built
    today = db.query("select (now() at time zone 'UTC')::date as d")[0]["d"]
    actual = db.query("select * from public.get_dashboard_stats(%s, 5)", (EDGE,))
    assert_dashboard_matches(actual, reference.dashboard(EDGE, 5, today), "edge project")
    assert any(r["latency_p99_ms"] is not None for r in actual)


def test_the_sketch_costs_little_storage(built):
    db, _, _ = built
    per_row = db.query(
        "select avg(pg_column_size(latency_sketch)) as bytes from analytics.int_usage_hourly_by_model"
        " where latency_sketch is not null"
    )[0]
    assert per_row["bytes"] < 200, per_row  # a few keys per (project, hour, provider, model)


# Two sketches of one bucket whose key 250 adds up to `total` requests, merged as every roll-up merges them.
BIG_MERGE_SQL = """
with parts as (
    select 1 as grp, cast('{{"250": {first}}}' as jsonb) as latency_sketch
    union all
    select 1 as grp, cast('{{"250": {second}, "300": 5}}' as jsonb) as latency_sketch
),
grouped as (
    select grp, {{{{ sketch_list('latency_sketch') }}}} as latency_sketches
    from parts
    group by grp
)
select
    cast(merged.latency_p50_ms as text) as p50,
    cast(merged.latency_p99_ms as text) as p99,
    cast({{{{ sketch_key_value('250') }}}} as text) as key_250
from grouped
{{{{ merged_sketch_join('grouped.latency_sketches', 'merged') }}}}
"""


def test_a_merged_key_above_the_integer_range_fails_loudly_and_one_below_it_merges(built):
    """The running sums take each merged key's count as an integer (docs/contract.md, section 8)."""
    db, _, _ = built
    fits = db.cli("dbt", "show", "--inline", BIG_MERGE_SQL.format(first=1_000_000_000, second=1_000_000_000))
    values = [v.strip() for v in fits.stdout.strip().splitlines()[-1].strip("|").split("|")]
    # 2,000,000,005 known latencies: p50 and p99 are both key 250
    assert len(values) == 3 and values[0] == values[1] == values[2] != "", fits.stdout[-2000:]
    too_big = db.cli("dbt", "show", "--inline", BIG_MERGE_SQL.format(first=2_000_000_000, second=200_000_000),
                     check=False)
    assert too_big.returncode != 0
    assert "out of range" in too_big.stdout + too_big.stderr, (too_big.stdout + too_big.stderr)[-2000:]
