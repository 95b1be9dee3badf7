"""Random mixtures of bad and extreme rows: nothing crashes the build, every output equals the reference."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from decimal import Decimal

import pytest
from conftest import SEED, assert_tables_equal, insert_rows, raw_rows, table
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
    "a" * 300,
]
PROVIDERS = ["openai", "OpenAI ", "anthropic", "deepseek", "google", "robert'); --", "", None]


def random_row(rng: random.Random, now: dt.datetime, projects: list) -> dict:
    def maybe(value, p_null=0.1):
        return None if rng.random() < p_null else value

    when = rng.choice(
        [
            now - dt.timedelta(seconds=rng.randint(0, 40 * 86400)),
            now - dt.timedelta(seconds=rng.randint(0, 3 * 3600)),
            dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=rng.randint(0, 10**6)),
            dt.datetime(2100, 1, 1, tzinfo=UTC),
            (now - dt.timedelta(days=rng.randint(0, 5))).replace(minute=0, second=0, microsecond=0),
            now + dt.timedelta(minutes=rng.choice([1, 4, 6, 60])),
        ]
    )
    tokens = [0, 1, 2_147_483_647, -1, -2_147_483_648, rng.randint(0, 100_000)]
    money = [
        Decimal(0),
        Decimal("0.000000000000000001"),
        Decimal("123456789.123456789123456789"),
        Decimal("-0.01"),
        Decimal(rng.randint(0, 10**9)) / Decimal(10**12),
    ]
    return {
        "id": uuid.UUID(int=rng.getrandbits(128)),
        "project_id": maybe(rng.choice(projects), 0.05),
        "created_at": maybe(when, 0.05),
        "provider": rng.choice(PROVIDERS),
        "model": rng.choice(NAMES),
        "tokens_input": maybe(rng.choice(tokens)),
        "tokens_output": maybe(rng.choice(tokens)),
        "cost_usd": maybe(rng.choice(money)),
        "potential_cost_usd": maybe(rng.choice(money), 0.3),
        "cached": maybe(rng.random() < 0.4),
        "latency_ms": maybe(rng.choice([0, -5, 2_147_483_647, rng.randint(1, 5000)])),
    }


@pytest.mark.parametrize("seed", [1, 2])
def test_random_hostile_rows_match_the_reference(make_db, seed):
    db = make_db(f"wl_test_hostile_{seed}")
    db.cli("generate", "--rows", "0", "--allow-external")
    rng = random.Random(seed)
    projects = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(4)]
    now = db.now()
    insert_rows(db, [random_row(rng, now, projects) for _ in range(1500)])
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
        assert db.query("select * from public.get_dashboard_stats(%s, 45)", (project,)) == reference.dashboard(
            project, 45, today
        )
