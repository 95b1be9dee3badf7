"""No dynamic SQL from input (issue 5, item 10): injection strings through every entry point get a
clear one-line refusal, and the database is untouched afterwards."""

from __future__ import annotations

import json
import re

import pytest

from orchestration.defs.partitions import daily_partitions, hourly_partitions, rebuild_vars

ATTACK = "2026-01-01'; drop table public.usage_logs; --"
UUID_ATTACK = "00000000-0000-0000-0000-000000000001'; drop table public.usage_logs; --"


@pytest.fixture(scope="module")
def db(make_db):
    db = make_db("wl_test_injection")
    db.generate(rows=3000, days=2, projects=3, seed=51)
    db.build_models()
    return db


def assert_untouched(db, rows_before: int) -> None:
    assert db.query("select count(*) as n from public.usage_logs")[0]["n"] == rows_before
    assert db.query("select to_regclass('analytics.usage_aggregations_daily') is not null as ok")[0]["ok"]


CLI_CASES = [
    (("stats", UUID_ATTACK), "project id"),
    (("stats", "00000000-0000-0000-0000-000000000001", "--days", "30; drop table x"), "invalid int"),
    (("rebuild", "--start", ATTACK, "--end", "2026-01-02"), "--start must be a date"),
    (("rebuild", "--start", "2026-01-01", "--end", ATTACK), "--end must be a date"),
    (("retention", "--raw-days", "1; drop table public.usage_logs"), "--raw-days must be a whole number"),
    (("retention", "--hourly-days", "1) or (1=1"), "--hourly-days must be a whole number"),
    (("reconcile", "--days", "7 or 1=1"), "invalid int"),
    (("backfill-potential-cost", "--batch-size", "1; select pg_sleep(10)"), "invalid int"),
    (("generate", "--rows", "10", "--end", ATTACK, "--allow-external"), "--end"),
    (("summary", "--days", "'; drop"), "invalid int"),
]


@pytest.mark.parametrize("args, message", CLI_CASES, ids=[c[0][0] + "-" + c[0][1] for c in CLI_CASES])
def test_cli_arguments_are_validated_not_interpolated(db, args, message):
    before = db.query("select count(*) as n from public.usage_logs")[0]["n"]
    result = db.cli(*args, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr, result.stderr
    assert_untouched(db, before)


DBT_VARS = [
    {"start": ATTACK, "end": "2026-01-02"},
    {"start": "2026-01-01", "end": "2026-01-02 00:00:00+00'); drop table public.usage_logs; --"},
    {"build_work_mem": "1GB'; drop table public.usage_logs; --"},
    {"bucket_replace_rewrite_fraction": "0.25; drop table public.usage_logs; --"},
    {"tenant_roles": ["authenticated; drop table public.usage_logs"]},
    {"lookback_hours": "3); drop table public.usage_logs; --"},
]


@pytest.mark.parametrize("dbt_vars", DBT_VARS, ids=[next(iter(v)) for v in DBT_VARS])
def test_dbt_vars_are_validated_not_interpolated(db, dbt_vars):
    """The vars a Dagster backfill or an operator passes to dbt."""
    before = db.query("select count(*) as n from public.usage_logs")[0]["n"]
    result = db.dbt("run", "--vars", json.dumps(dbt_vars), check=False)
    assert result.returncode != 0, result.stdout[-2000:]
    assert "drop table" in result.stdout and re.search(r"must (be|list)", result.stdout), result.stdout[-2000:]
    assert_untouched(db, before)


@pytest.mark.parametrize("partitions", [hourly_partitions, daily_partitions], ids=["hourly", "daily"])
def test_dagster_partition_keys_are_parsed_as_times(partitions):
    """Backfill ranges reach dbt only as datetimes formatted by rebuild_vars, never as raw text."""
    with pytest.raises(ValueError):
        partitions.time_window_for_partition_key(ATTACK)
    window = partitions.time_window_for_partition_key(partitions.get_first_partition_key())
    rendered = json.loads(rebuild_vars(window, lookback_hours=3))
    assert set(rendered) == {"start", "end"}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d", value) for value in rendered.values()), rendered
