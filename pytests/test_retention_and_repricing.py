"""Retention and a price change (issue 5): aggregates outlive the raw rows they came from, and a
changed price period reprices exactly the rows it covers. Every check compares with the
independent reference."""

from __future__ import annotations

import datetime as dt

from conftest import GRAINS, assert_tables_equal, load_price_seed, raw_rows, table, write_tripled_price_seed
from reference import compute, load_prices
from test_faults import snapshot


def test_retention_deletes_whole_days_and_aggregates_outlive_the_raw_rows(make_db):
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

    done = db.cli("retention", "--raw-days", "3", "--hourly-days", "5", "--daily-days", "forever")
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
    from orchestration.defs.jobs import retention_job

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
    new_seed = tmp_path / "model_pricing.csv"
    write_tripled_price_seed(new_seed, change_day)
    # `dbt seed` of the edited file, done directly so the repository's seed stays as it is
    load_price_seed(db, new_seed)

    # The documented re-aggregation step: rebuild the days the changed periods cover.
    db.cli("rebuild", "--start", change_day.isoformat(), "--end", (today + dt.timedelta(days=1)).isoformat())

    reference = compute(raw_rows(db), load_prices(new_seed), db.now())
    for name, (keys, attribute) in GRAINS.items():
        assert_tables_equal(table(db, name, keys), getattr(reference, attribute), name)
    after = snapshot(db)["usage_by_model_daily"]
    moved = {k for k in after if after[k] != before["usage_by_model_daily"].get(k)}
    assert moved, "the price change re-priced nothing: the test data has no list-priced gpt-4o-mini rows"
    assert all(k[3] == "gpt-4o-mini" and k[1] >= change_day for k in moved), sorted(moved, key=str)[:5]
