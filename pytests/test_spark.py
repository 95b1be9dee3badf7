"""The same dbt project on Apache Spark (`dbt build --target spark`, a local session), compared row by
row with the Postgres build of the same messy logs, then published into Postgres, where
get_dashboard_stats serves it. Part of `make test`; alone, `make test-spark` (both run `make setup-spark`)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import (
    ATTRIBUTION_COLUMNS,
    GRAINS,
    REPO,
    SEED,
    SPARK_PUBLISHED_KEYS,
    assert_tables_equal,
    insert_rows,
    load_price_seed,
    raw_rows,
    request,
    table,
    write_tripled_price_seed,
)
from reference import compute, load_prices

if os.environ.get("WATCHLLM_SPARK_TESTS") == "required":  # make test / test-spark: a missing pyspark is a failure
    import pyspark  # noqa: F401
pytest.importorskip("pyspark", reason="the Spark extras are not installed: run `make setup-spark`")
pytestmark = pytest.mark.spark

END = "2026-11-20T12:00:00+00:00"
OUTPUTS = SPARK_PUBLISHED_KEYS


# Every Spark process here is a short local JVM on a few thousand rows: C1 only and the serial
# collector nearly halve the CPU each start-up costs (38 s to 21 s of CPU measured), which on 2
# cores shared with the Postgres tests is the suite's longest file. With C1 alone the generated code
# of a whole range rebuild in one JVM outgrew the default code cache ("CodeCache is full"): 512 MB
# of reserved address space, filled only as far as it is used.
TEST_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:ReservedCodeCacheSize=512m"


def spark_env(spark_dir) -> dict:
    return {
        "JAVA_TOOL_OPTIONS": TEST_JVM_OPTIONS,
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
        db.generate(rows=3000, days=3, projects=5, seed=31, end=END, extra=("--attribution",))
        insert_rows(db, boundary_rows())
        db.build_models()
    with published.connect() as conn:  # the Postgres tables exist, empty: publish must fill them
        conn.execute("truncate " + ", ".join(f"analytics.{name}" for name in OUTPUTS))
    env = spark_env(spark_dir)
    exported = published.cli("spark", "export-logs", extra_env=env)
    build = published.cli("dbt", "build", "--target", "spark", extra_env=env, timeout=1200)
    publish = published.cli("spark", "publish", extra_env=env)
    PRICES[published.env["PGDATABASE"]] = SEED
    return postgres, published, env, exported, build, publish


def test_the_spark_build_passes_its_tests_and_equals_the_postgres_build_row_by_row(built):
    postgres, published, _, exported, build, publish = built
    assert "day(s) exported" in exported.stdout
    assert "ERROR=0" in build.stdout and "PASS=" in build.stdout, build.stdout[-3000:]
    assert "get_dashboard_stats is a Postgres function: skipped on spark" in build.stdout
    assert "rows into 9 Postgres tables" in publish.stdout
    assert_all_equal(postgres, published, "the first build")


def partition_files(env: dict, name: str) -> dict[str, frozenset]:
    """The data files of each partition of a Spark table (name and modification time): a partition
    that a run overwrites gets new files, one it leaves alone keeps its old ones."""
    root = REPO / env["WATCHLLM_SPARK_DIR"] / "warehouse" / "analytics.db" / name
    assert root.is_dir(), root
    return {
        part.name: frozenset(
            (f.name, f.stat().st_mtime_ns) for f in part.iterdir() if not f.name.startswith((".", "_"))
        )
        for part in root.iterdir()
        if part.is_dir() and "=" in part.name
    }


def test_a_range_rebuild_on_spark_replaces_only_the_days_of_its_range(built):
    postgres, published, env, *_ = built
    before = partition_files(env, "usage_aggregations_daily")
    assert {"date=2026-11-18", "date=2026-11-19", "date=2026-11-20"} <= set(before), sorted(before)
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
    after = partition_files(env, "usage_aggregations_daily")
    assert {day for day in before if after.get(day) != before[day]} == {"date=2026-11-19"}


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


def spark_sql(env: dict, code: str) -> None:
    """Python `code` run with `spark`, a local session on the test's warehouse, in its own process
    (the Derby metastore admits one process at a time)."""
    program = "from orchestration.spark.session import session\nwith session() as spark:\n" + "".join(
        f"    {line}\n" for line in code.strip().splitlines()
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def assert_all_equal(postgres, published, what: str) -> None:
    """Every published output equals the Postgres build, and the contract tables equal the reference."""
    for name, keys in OUTPUTS.items():
        assert_tables_equal(table(published, name, keys), table(postgres, name, keys), f"{name} ({what})")
    raw = raw_rows(postgres, ATTRIBUTION_COLUMNS)
    reference = compute(raw, load_prices(PRICES[published.env["PGDATABASE"]]), postgres.now())
    for name, (keys, attribute) in {**GRAINS, **DIMENSION_GRAIN}.items():
        assert_tables_equal(
            table(published, name, keys), getattr(reference, attribute), f"{name} vs reference ({what})"
        )


# the keys, end users and tags of the generated rows (--attribution), against the reference too
DIMENSION_GRAIN = {"usage_by_dimension_daily": (("project_id", "date", "dimension", "value"), "by_dimension_daily")}


PRICES: dict[str, object] = {}  # each published database's price list (the seed until a test edits it)


def late_and_new_rows() -> list[dict]:
    """Rows that arrive after the first build: late ones inside the 3-hour lookback, and a new hour."""
    end = dt.datetime.fromisoformat(END)
    project, other = uuid.UUID(int=77), uuid.UUID(int=78)
    return [
        request(project, end - dt.timedelta(hours=2, minutes=30), cost_usd=Decimal("1.000000000000000001")),
        request(project, end - dt.timedelta(minutes=1), cached=True, cost_usd=Decimal(0), latency_ms=3),
        request(other, end - dt.timedelta(hours=1), model="gpt-4o", latency_ms=12_000),
        request(project, end + dt.timedelta(minutes=20)),
        request(other, end + dt.timedelta(minutes=59, seconds=59, microseconds=999_999), cost_usd=None),
    ]


def test_incremental_runs_on_spark_replace_only_their_days_and_keep_days_whose_raw_rows_are_gone(built):
    postgres, published, env, *_ = built
    # Retention on Spark: the raw partition of the first day is dropped. Postgres keeps its raw rows.
    first_day = min(d for (_, d) in table(postgres, "usage_aggregations_daily", ("project_id", "date")))
    # History outside the window broken on purpose: 25 rows of the second day logged twice.
    broken_day = first_day + dt.timedelta(days=1)
    spark_sql(
        env,
        f"""
spark.sql("alter table public.usage_logs drop partition (created_date = date'{first_day}')")
logs = spark.table("public.usage_logs")
twice = logs.where(logs.created_date == "{broken_day}").where(logs.project_id.isNotNull()).orderBy("id").limit(25)
twice.write.insertInto("public.usage_logs")
""",
    )
    hourly_before = partition_files(env, "int_usage_hourly_by_model")
    late = late_and_new_rows()
    for db in (postgres, published):
        insert_rows(db, late)
    postgres.dbt("run")
    exported = published.cli("spark", "export-logs", "--start", END[:10], extra_env=env)
    assert "export-logs: 1 day(s) exported" in exported.stdout, exported.stdout
    run = published.cli("dbt", "build", "--target", "spark", extra_env=env, timeout=1200)
    assert "ERROR=0" in run.stdout, run.stdout[-3000:]
    # its tests read only the window: the duplicated ids of the broken day were not seen
    results = json.loads((Path(env["DBT_TARGET_PATH"]) / "run_results.json").read_text())["results"]
    tested = {r["unique_id"].split(".")[2]: r["status"] for r in results if r["unique_id"].startswith("test.")}
    assert tested["usage_logs_grain_is_unique"] == "pass"
    assert tested["stg_proxy__usage_logs_grain_is_unique"] == "pass", sorted(tested)
    # the deep check reads all of history and finds them
    deep = published.cli(
        "dbt",
        "test",
        "--target",
        "spark",
        "--select",
        "tag:deep_check",
        "--vars",
        "{test_window: all}",
        check=False,
        extra_env=env,
        timeout=1200,
    )
    assert deep.returncode == 1 and "stg_proxy__usage_logs_grain_is_unique" in deep.stdout, deep.stdout[-3000:]
    repaired = published.cli("spark", "export-logs", "--start", str(broken_day), "--end", "2026-11-20", extra_env=env)
    assert "export-logs: 1 day(s) exported" in repaired.stdout, repaired.stdout
    published.cli("spark", "publish", extra_env=env)
    # the scheduled run replaced the window's day (late rows and the new hour) and nothing before it
    hourly_after = partition_files(env, "int_usage_hourly_by_model")
    assert {day for day in hourly_after if hourly_after[day] != hourly_before.get(day)} == {"partition_date=2026-11-20"}
    # the dropped day was outside the window: its aggregates are still there, equal to Postgres'
    assert_all_equal(postgres, published, "after late rows and a new hour")

    # A range rebuild over every day, the dropped one included, never overwrites that day.
    rebuilt = published.cli(
        "rebuild", "--start", str(first_day), "--end", "2026-11-21", "--target", "spark", extra_env=env, timeout=1200
    )
    published.cli("spark", "publish", extra_env=env)
    assert rebuilt.returncode == 0
    hourly_rebuilt = partition_files(env, "int_usage_hourly_by_model")
    assert hourly_rebuilt[f"partition_date={first_day}"] == hourly_before[f"partition_date={first_day}"]
    assert all(hourly_rebuilt[day] != hourly_after[day] for day in hourly_after if day != f"partition_date={first_day}")
    assert_all_equal(postgres, published, "after a range rebuild reaching the day without raw rows")


def test_a_price_change_followed_by_a_range_rebuild_reprices_the_same_rows_on_spark(built, tmp_path):
    postgres, published, env, *_ = built
    before = table(published, "usage_by_model_daily", OUTPUTS["usage_by_model_daily"])
    change_day = dt.date(2026, 11, 19)
    new_seed = tmp_path / "model_pricing.csv"
    write_tripled_price_seed(new_seed, change_day)
    load_price_seed(postgres, new_seed)
    # the Spark seed table reloaded from the same file, with the types `dbt seed` gives it
    spark_sql(
        env,
        f"""
target = spark.table("analytics.model_pricing")
edited = spark.read.option("header", True).csv("{new_seed}")
typed = edited.select(*[edited[f.name].cast(f.dataType) for f in target.schema])
typed.write.insertInto("analytics.model_pricing", overwrite=True)
""",
    )
    PRICES[published.env["PGDATABASE"]] = new_seed
    postgres.cli("rebuild", "--start", str(change_day), "--end", "2026-11-21")
    published.cli(
        "rebuild", "--start", str(change_day), "--end", "2026-11-21", "--target", "spark", extra_env=env, timeout=1200
    )
    published.cli("spark", "publish", "--start", str(change_day), extra_env=env)
    assert_all_equal(postgres, published, "after a price change and a range rebuild")
    after = table(published, "usage_by_model_daily", OUTPUTS["usage_by_model_daily"])
    moved = {key for key, row in after.items() if row != before.get(key)}
    assert moved, "the price change re-priced nothing: the test data has no list-priced gpt-4o-mini rows"
    assert all(key[3] == "gpt-4o-mini" and key[1] >= change_day for key in moved), sorted(moved, key=str)[:5]


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
    [row] = _show_rows(db, PORTABLE_SQL, extra_env, *target)
    return row


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


# The sketch and map macros on both engines: built per group, exploded, merged, ranked.
SKETCH_LATENCIES = {
    "spread": [1, 50, 100, 101, 250, 1000, 12_000, 600_000],
    "outlier": [5] * 10 + [100_000],
    "unknown": [None, None],
}
SKETCH_SQL = (
    "with latencies as (\n"
    + "\n    union all\n".join(
        f"    select '{group}' as grp, cast({'null' if v is None else v} as integer) as latency_ms"
        for group, values in SKETCH_LATENCIES.items()
        for v in values
    )
    + """
),
keyed as (
    select grp, {{ latency_sketch_key('latency_ms') }} as sketch_key, count(*) as sketch_count
    from latencies
    group by grp, {{ latency_sketch_key('latency_ms') }}
),
row_key_counts as (
    select
        grp,
        {{ latency_sketch_key('latency_ms') }} as sketch_key,
        count(*) over (partition by grp, {{ latency_sketch_key('latency_ms') }}) as key_requests
    from latencies
),
row_counted as (
    select grp, {{ sketch_from_row_key_counts('sketch_key', 'key_requests') }} as latency_sketch
    from row_key_counts
    group by grp
),
key_parts as (
    -- each group's counts split in two sketches (the outlier group's ten 5 ms land in both halves)
    select grp, 0 as part, sketch_key, sketch_count - cast(floor(sketch_count / 2) as bigint) as sketch_count from keyed
    union all
    select grp, 1 as part, sketch_key, cast(floor(sketch_count / 2) as bigint) as sketch_count from keyed
    where sketch_count >= 2
),
part_sketches as (
    select grp, part, {{ sketch_from_row_key_counts('sketch_key', 'sketch_count') }} as latency_sketch
    from key_parts
    group by grp, part
),
grouped_lists as (
    select grp, {{ sketch_list('latency_sketch') }} as latency_sketches
    from part_sketches
    group by grp
),
per_group as (
    select
        grouped_lists.grp,
        merged.latency_sketch,
        merged.latency_p50_ms,
        merged.latency_p95_ms,
        merged.latency_p99_ms
    from grouped_lists
    {{ merged_sketch_join('grouped_lists.latency_sketches', 'merged') }}
),
key_counts as (
    select
        grp,
        count(sketch_key) as sketch_keys,
        sum(case when sketch_key is not null then sketch_count end) as known_latencies
    from keyed
    group by grp
),
weekdays as (
    select count(distinct {{ weekday(add_days("cast('2026-11-02' as date)", 'step')) }}) as distinct_weekdays
    from (select 0 as step union all select 1 union all select 2 union all select 3 union all select 4
          union all select 5 union all select 6 union all select 7) as steps
)
select
    per_group.grp,
    cast(per_group.latency_p50_ms as {{ dbt.type_string() }}) as p50,
    cast(per_group.latency_p95_ms as {{ dbt.type_string() }}) as p95,
    cast(per_group.latency_p99_ms as {{ dbt.type_string() }}) as p99,
    key_counts.sketch_keys,
    key_counts.known_latencies,
    (select distinct_weekdays from weekdays) as distinct_weekdays,
    {%- if target.type == 'spark' %}
    to_json(per_group.latency_sketch) as merged_sketch,
    to_json(row_counted.latency_sketch) as row_counted_sketch,
    {%- else %}
    cast(per_group.latency_sketch as text) as merged_sketch,
    cast(row_counted.latency_sketch as text) as row_counted_sketch,
    {%- endif %}
    cast({{ usd_for_tokens('cast(1000000001 as bigint)', "cast('0.000000000001' as " ~ money_type() ~ ")") }}
        as {{ dbt.type_string() }}) as tiny_cost
from per_group
inner join key_counts on per_group.grp = key_counts.grp
inner join row_counted on per_group.grp = row_counted.grp
order by per_group.grp
"""
)


def _show_rows(db, sql: str, extra_env: dict, *target: str) -> list[dict]:
    result = db.cli(
        "dbt",
        "show",
        *target,
        "--inline",
        sql,
        "--output",
        "json",
        "--log-format",
        "json",
        "--limit",
        "50",
        extra_env=extra_env,
        timeout=600,
    )
    for line in result.stdout.splitlines():
        event = json.loads(line)
        if event.get("data", {}).get("preview"):
            return [{key.lower(): value for key, value in row.items()} for row in json.loads(event["data"]["preview"])]
    raise AssertionError(result.stdout[-2000:])


def test_the_latency_sketch_and_map_macros_give_the_same_answers_on_both_engines(built):
    from reference import within_sketch_bound

    postgres, _, env, *_ = built
    spark = _show_rows(postgres, SKETCH_SQL, env, "--target", "spark")
    pg = _show_rows(postgres, SKETCH_SQL, {})
    assert [row["grp"] for row in pg] == ["outlier", "spread", "unknown"]
    for spark_row, pg_row in zip(spark, pg, strict=True):
        assert spark_row["grp"] == pg_row["grp"]
        group = pg_row["grp"]
        known = [v for v in SKETCH_LATENCIES[group] if v is not None]
        if not known:  # all-NULL latencies: no sketch and no percentiles, on both engines
            for row in (spark_row, pg_row):
                assert row["merged_sketch"] is None and row["row_counted_sketch"] is None, row
                assert row["p50"] is None and row["p95"] is None and row["p99"] is None, row
            continue
        for column in ("p50", "p95", "p99"):
            assert Decimal(spark_row[column]) == Decimal(pg_row[column]), (group, column)
        assert spark_row["sketch_keys"] == pg_row["sketch_keys"]
        assert spark_row["known_latencies"] == pg_row["known_latencies"] == len(known)
        ordered = sorted(known)
        for column, p in (("p50", 50), ("p95", 95), ("p99", 99)):
            exact = ordered[max(1, -(-p * len(ordered) // 100)) - 1]
            assert within_sketch_bound(Decimal(pg_row[column]), exact), (group, column, pg_row[column], exact)
        assert spark_row["distinct_weekdays"] == pg_row["distinct_weekdays"] == 7
        # the pass's sketch (each request's key count in its group) and the merge of the two half
        # sketches are the same map {key: requests}, on both engines
        maps = [
            {int(k): int(v) for k, v in json.loads(row[column]).items()}
            for row in (spark_row, pg_row)
            for column in ("merged_sketch", "row_counted_sketch")
        ]
        assert all(m == maps[0] for m in maps), (group, maps)
        assert sum(maps[0].values()) == len(known) and len(maps[0]) == pg_row["sketch_keys"]
        assert Decimal(spark_row["tiny_cost"]) == Decimal(pg_row["tiny_cost"]) == Decimal("0.000000001000000001")
