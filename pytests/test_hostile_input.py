"""Property-based (hypothesis): random mixtures of bad and extreme rows never crash the build, every bad
row lands in quarantine with its reasons, and every output equals the independent reference."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from conftest import SEED, assert_dashboard_matches, assert_tables_equal, insert_rows, raw_rows, table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import compute, load_prices

UTC = dt.UTC
NAMES = [
    "gpt-4o",
    " GPT-4o-MINI\t",
    "deepseek-chat",
    "claude-3-5-sonnet-20241022",
    "ft:gpt-4o-mini-2024-07-18:x::y",
    "'; drop table usage_logs; --",
    'mo"del',
    "modèle-ünïcödé",
    "模型",
    "",
    "   ",
    None,
    "a" * 256,
    "a" * 257,
    "".join(chr(33 + (i * 7919) % 94) for i in range(3840)),  # 3,840 characters of noise
    "<!channel> <https://evil.example|click here>",
    "line1\nline2",
    "x$\\q$",
    "\x1b[31mred\x1b[0m \u202eevil",
]
PROVIDERS = ["openai", "OpenAI ", "anthropic", "deepseek", "google", "robert'); --", "", None, "p" * 300]


EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
MONEY = [
    Decimal(0),
    Decimal("0.000000000000000001"),
    Decimal("123456789.123456789123456789"),
    Decimal("-0.01"),
]
TOKENS = [0, 1, 2_147_483_647, -1, -2_147_483_648]


def nullable(strategy, p_null_weight: int = 1):
    return st.one_of(*([st.none()] * p_null_weight), strategy, strategy, strategy, strategy)


def rows_strategy(now: dt.datetime, projects: list[uuid.UUID]):
    """Random mixtures of every bad-row kind of the contract, extreme values and ordinary rows."""
    when = st.one_of(
        st.integers(0, 40 * 86400).map(lambda s: now - dt.timedelta(seconds=s)),
        st.integers(0, 3 * 3600).map(lambda s: now - dt.timedelta(seconds=s)),
        st.integers(0, 10**6).map(lambda us: EPOCH + dt.timedelta(microseconds=us)),
        st.just(dt.datetime(2100, 1, 1, tzinfo=UTC)),
        st.integers(0, 5).map(lambda d: (now - dt.timedelta(days=d)).replace(minute=0, second=0, microsecond=0)),
        st.sampled_from([1, 4, 6, 60]).map(lambda m: now + dt.timedelta(minutes=m)),
    )
    tokens = st.one_of(st.sampled_from(TOKENS), st.integers(0, 100_000))
    money = st.one_of(
        st.sampled_from(MONEY),
        st.decimals(min_value=0, max_value=1000, places=12, allow_nan=False, allow_infinity=False),
    )
    row = st.fixed_dictionaries(
        {
            "id": st.uuids(),
            "project_id": nullable(st.sampled_from(projects)),
            "created_at": nullable(when),
            "provider": st.sampled_from(PROVIDERS),
            "model": st.sampled_from(NAMES),
            "tokens_input": nullable(tokens),
            "tokens_output": nullable(tokens),
            "cost_usd": nullable(money),
            "potential_cost_usd": nullable(money, 2),
            "cached": nullable(st.booleans()),
            "latency_ms": nullable(st.sampled_from([0, -5, 2_147_483_647]) | st.integers(1, 5000)),
        }
    )
    return st.lists(row, min_size=1, max_size=250, unique_by=lambda r: r["id"])


@pytest.fixture(scope="module")
def db(make_db):
    db = make_db("wl_test_hostile")
    db.cli("generate", "--rows", "0", "--allow-external")
    return db


def reset(db) -> None:
    with db.connect() as conn:
        conn.execute("drop schema if exists analytics cascade")
        conn.execute("drop function if exists public.get_dashboard_stats(uuid, integer, text)")
        conn.execute("truncate public.usage_logs")


@settings(max_examples=6, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_hostile_rows_match_the_reference(db, data):
    reset(db)
    projects = [uuid.UUID(int=i) for i in range(1, 5)]
    now = db.now()
    rows = data.draw(rows_strategy(now, projects), label="usage_logs rows")
    insert_rows(db, rows)
    result = db.dbt("build", check=False)
    assert result.returncode == 0, result.stdout[-3000:]

    reference = compute(raw_rows(db), load_prices(SEED), db.now())
    rejected = {r["id"]: r["reason"] for r in db.query("select id, reason from analytics.usage_logs_rejected")}
    assert rejected == reference.rejected
    for name, keys, attribute in (
        ("usage_aggregations_hourly", ("project_id", "hour_start"), "hourly"),
        ("usage_aggregations_daily", ("project_id", "date"), "daily"),
        ("usage_by_model_daily", ("project_id", "date", "provider", "model"), "by_model_daily"),
        ("project_savings_monthly", ("project_id", "month"), "monthly"),
    ):
        assert_tables_equal(table(db, name, keys), getattr(reference, attribute), name)
    today = db.query("select (now() at time zone 'UTC')::date as d")[0]["d"]
    for project in projects:
        assert_dashboard_matches(
            db.query("select * from public.get_dashboard_stats(%s, 45)", (project,)),
            reference.dashboard(project, 45, today),
            str(project),
        )


def test_figures_beyond_28_significant_digits_match_the_reference(db):
    """Postgres numeric is exact far past Python's default Decimal precision (28 digits): a cached
    row whose recorded cost dwarfs its recorded potential gives a savings_pct of about -1.2e28,
    which the reference must compute exactly too (found by the random test above)."""
    reset(db)
    project = uuid.UUID(int=1)
    now = db.now()
    base = {"project_id": project, "provider": "openai", "model": "gpt-4o", "latency_ms": 10}
    rows = [
        {**base, "id": uuid.uuid4(), "created_at": now - dt.timedelta(hours=2), "cached": True,
         "tokens_input": 1, "tokens_output": 1, "cost_usd": MONEY[2], "potential_cost_usd": MONEY[1]},
        {**base, "id": uuid.uuid4(), "created_at": now - dt.timedelta(hours=2), "cached": False,
         "tokens_input": 2_147_483_647, "tokens_output": 2_147_483_647, "cost_usd": MONEY[1],
         "potential_cost_usd": None},
    ]
    insert_rows(db, rows)
    result = db.dbt("build", check=False)
    assert result.returncode == 0, result.stdout[-3000:]

    reference = compute(raw_rows(db), load_prices(SEED), db.now())
    monthly = table(db, "project_savings_monthly", ("project_id", "month"))
    assert abs(next(iter(monthly.values()))["savings_pct"]) > Decimal("1e27")
    assert_tables_equal(monthly, reference.monthly, "project_savings_monthly")
    assert_tables_equal(table(db, "usage_aggregations_daily", ("project_id", "date")), reference.daily, "daily")
