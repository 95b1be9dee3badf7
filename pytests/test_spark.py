"""The same dbt project on Apache Spark (`dbt build --target spark`, a local session), compared row by
row with the Postgres build of the same messy logs, then published into Postgres, where
get_dashboard_stats serves it. Runs with `make test-spark` (it needs `make setup-spark`)."""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from decimal import Decimal

import pytest
from conftest import REPO, assert_tables_equal, insert_rows, request, table

if os.environ.get("WATCHLLM_SPARK_TESTS") == "required":  # make test-spark: a missing pyspark is a failure
    import pyspark  # noqa: F401
pytest.importorskip("pyspark", reason="the Spark extras are not installed: run `make setup-spark`")
pytestmark = pytest.mark.spark

END = "2026-11-20T12:00:00+00:00"
OUTPUTS = {
    "int_usage_hourly_by_model": ("project_id", "hour_start", "provider", "model"),
    "usage_aggregations_hourly": ("project_id", "hour_start"),
    "usage_by_model_daily": ("project_id", "date", "provider", "model"),
    "usage_aggregations_daily": ("project_id", "date"),
    "project_savings_monthly": ("project_id", "month"),
    "model_cost_counterfactual_monthly": ("project_id", "month", "provider", "model"),
}


def spark_env(spark_dir) -> dict:
    return {
        "WATCHLLM_SPARK_DIR": str(spark_dir),
        "WATCHLLM_SPARK_MASTER": "local[2]",
        "DBT_TARGET_PATH": str(REPO / "target" / f"pytest-spark-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"),
    }


def boundary_rows() -> list[dict]:
    """Hand-written rows at the edges: a second before and at UTC midnight, 18-decimal money, odd labels."""
    project = uuid.UUID(int=77)
    midnight = dt.datetime(2026, 11, 19, tzinfo=dt.UTC)
    return [
        request(project, midnight - dt.timedelta(microseconds=1), cost_usd=Decimal("0.000000000000000001")),
        request(project, midnight, provider="  OpenAI\t", model="GPT-4o-Mini ", cost_usd=None),
        request(
            project, midnight, cached=True, cost_usd=Decimal(0), potential_cost_usd=Decimal("12345678901234567890.5")
        ),
        request(project, midnight + dt.timedelta(minutes=1), latency_ms=1, cost_usd=None, potential_cost_usd=None),
        request(project, midnight + dt.timedelta(minutes=2), latency_ms=600_000),
    ]


@pytest.fixture(scope="module")
def built(make_db, tmp_path_factory):
    spark_dir = tmp_path_factory.mktemp("spark")
    postgres = make_db("wl_test_spark_postgres")
    published = make_db("wl_test_spark_published")
    for db in (postgres, published):
        db.generate(rows=3000, days=3, projects=5, seed=31, end=END)
        insert_rows(db, boundary_rows())
        db.build_models()
    with published.connect() as conn:  # the Postgres tables exist, empty: publish must fill them
        conn.execute("truncate " + ", ".join(f"analytics.{name}" for name in OUTPUTS))
    env = spark_env(spark_dir)
    exported = published.cli("spark", "export-logs", extra_env=env)
    build = published.cli("dbt", "build", "--target", "spark", extra_env=env, timeout=1200)
    publish = published.cli("spark", "publish", extra_env=env)
    return postgres, published, env, exported, build, publish


def test_the_spark_build_passes_its_tests_and_equals_the_postgres_build_row_by_row(built):
    postgres, published, _, exported, build, publish = built
    assert "day(s) exported" in exported.stdout
    assert "ERROR=0" in build.stdout and "PASS=" in build.stdout, build.stdout[-3000:]
    assert "get_dashboard_stats is a Postgres function: skipped on spark" in build.stdout
    assert "rows into 6 Postgres tables" in publish.stdout
    for name, keys in OUTPUTS.items():
        assert_tables_equal(table(published, name, keys), table(postgres, name, keys), f"{name} (Spark vs Postgres)")


def test_a_range_rebuild_on_spark_rebuilds_whole_tables_and_keeps_every_day(built):
    postgres, published, env, *_ = built
    published.cli(
        "dbt",
        "run",
        "--target",
        "spark",
        "--select",
        "usage_aggregations_daily",
        "--vars",
        '{start: "2026-11-19", end: "2026-11-20"}',
        extra_env=env,
        timeout=900,
    )
    published.cli("spark", "publish", extra_env=env)
    keys = OUTPUTS["usage_aggregations_daily"]
    assert_tables_equal(
        table(published, "usage_aggregations_daily", keys),
        table(postgres, "usage_aggregations_daily", keys),
        "usage_aggregations_daily after a range run on Spark",
    )


def test_after_publish_get_dashboard_stats_serves_the_spark_aggregates(built):
    postgres, published, *_ = built
    busiest = postgres.query(
        "select project_id from analytics.usage_aggregations_daily group by 1 order by sum(total_requests) desc limit 1"
    )[0]["project_id"]
    for zone in ("UTC", "Asia/Kolkata"):
        query = "select * from public.get_dashboard_stats(%s, 30, %s)"
        assert published.query(query, (busiest, zone)) == postgres.query(query, (busiest, zone)), zone


def test_export_logs_resumes_and_money_that_does_not_fit_fails_loudly(built, make_db, tmp_path):
    _, published, env, *_ = built
    again = published.cli("spark", "export-logs", extra_env=env)
    assert again.stdout.startswith("export-logs: 0 day(s) exported")

    huge = make_db("wl_test_spark_huge")
    huge.cli("generate", "--rows", "0", "--allow-external")
    insert_rows(
        huge,
        [
            request(
                uuid.UUID(int=5), dt.datetime(2026, 11, 1, tzinfo=dt.UTC), cost_usd=Decimal("123456789012345678901.5")
            )
        ],
    )
    failed = huge.cli("spark", "export-logs", check=False, extra_env={**env, "WATCHLLM_SPARK_DIR": str(tmp_path)})
    assert failed.returncode == 2
    assert "does not fit Spark's decimal(38,18)" in failed.stderr and "123456789012345678901.5" in failed.stderr


# The engine-specific macros, on both engines, with the session in a +05:45 zone: the same answers.
PORTABLE_SQL = """
select
    cast({{ utc_hour("cast('2026-11-01 13:47:10Z' as timestamp)" if target.type == 'spark'
                     else "timestamptz '2026-11-01 13:47:10+00'") }} as {{ dbt.type_string() }}) as hour_text,
    {{ utc_date("cast('2026-11-01 20:47:00Z' as timestamp)" if target.type == 'spark'
                else "timestamptz '2026-11-01 20:47:00+00'") }} as late_evening_date,
    {{ utc_midnight("cast('2026-11-01' as date)") }} = {{ utc_literal('2026-11-01') }} as midnight_is_literal,
    {{ trim_whitespace("'\\t  OpenAI \\n'" if target.type == 'spark' else "E'\\t  OpenAI \\n'") }} as trimmed,
    {{ regex_matches("'FT:GPT-4o-2024-08-06:acme'", "'^ft:gpt-4o-2024-08-06:'") }} as pattern_matches,
    {{ regex_matches("'x1'", "concat('^', chr(92), 'D', chr(92), 'd$')") }} as class_matches,
    {{ percent_of('1', '3') }} as one_third_pct,
    {{ add_days("cast('2026-02-27' as date)", 2) }} as two_days_later,
    {{ days_between("cast('2026-02-27' as date)", "cast('2026-03-01' as date)") }} as days_apart
"""


def _show(db, extra_env: dict, *target: str) -> dict:
    result = db.cli(
        "dbt",
        "show",
        *target,
        "--inline",
        PORTABLE_SQL,
        "--output",
        "json",
        "--log-format",
        "json",
        extra_env=extra_env,
        timeout=600,
    )
    for line in result.stdout.splitlines():
        event = json.loads(line)
        if event.get("data", {}).get("preview"):
            [row] = json.loads(event["data"]["preview"])
            return {key.lower(): value for key, value in row.items()}
    raise AssertionError(result.stdout[-2000:])


def test_the_engine_specific_macros_agree_on_both_engines_whatever_the_session_time_zone(built):
    postgres, _, env, *_ = built
    spark = _show(postgres, {**env, "WATCHLLM_SPARK_SESSION_TIME_ZONE": "Asia/Kathmandu"}, "--target", "spark")
    pg = _show(postgres, {"PGTZ": "Asia/Kathmandu"})
    assert spark["late_evening_date"] == pg["late_evening_date"] == "2026-11-01"  # 02:32 on Nov 2 in Kathmandu
    assert spark["midnight_is_literal"] is True and pg["midnight_is_literal"] is True
    assert spark["trimmed"] == pg["trimmed"] == "OpenAI"
    assert spark["pattern_matches"] is True and pg["pattern_matches"] is True
    assert spark["class_matches"] is True and pg["class_matches"] is True  # ^\\D\\d$: no lower-casing to \\d
    assert float(spark["one_third_pct"]) == float(pg["one_third_pct"]) == 33.33
    assert spark["two_days_later"] == pg["two_days_later"] == "2026-03-01"
    assert spark["days_apart"] == pg["days_apart"] == 2
    # the hour as text is in each session's zone: both are 13:00 UTC
    assert "13:00:00" in pg["hour_text"] or "18:45:00" in pg["hour_text"], pg["hour_text"]
    assert "18:45:00" in spark["hour_text"], spark["hour_text"]  # 13:00 UTC shown at +05:45
