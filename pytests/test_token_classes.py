"""Token classes, service tiers and prompt-size thresholds (docs/contract.md, section 14), against an
independent Decimal computation that reads its prices straight from the LiteLLM snapshot JSON.

The rows are dated after the 2026 snapshot's as-of date (2026-11-01), so the seed's prices for
these models are the snapshot's. The reference below resolves every fallback itself from the JSON
keys; it shares nothing with pricing import or the models.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from decimal import Decimal

import pytest
from conftest import GRAINS, REPO, SEED, assert_dashboard_matches, assert_tables_equal, insert_rows, table
from reference import MICRO, ClassPrice, compute, exact, load_prices, service_tier

SNAPSHOT = REPO / "pricing" / "snapshots" / "litellm-1.110.2-model-prices.json"
AS_OF = dt.date(2026, 11, 1)
UTC = dt.UTC
PROJECT = uuid.UUID("c1a55e50-0000-0000-0000-000000000001")
OTHER = uuid.UUID("c1a55e50-0000-0000-0000-000000000002")
CLASS_COLUMNS_DDL = (
    "alter table public.usage_logs add column tokens_cache_read integer,"
    " add column tokens_cache_write integer, add column tokens_cache_write_1h bigint,"
    " add column tokens_reasoning integer, add column service_tier text"
)

# The proxy's (provider, model) -> the snapshot's key (AI Studio's Gemini, as pricing import prefers).
LITELLM_KEYS = {
    ("anthropic", "claude-sonnet-4-5"): "claude-sonnet-4-5",
    ("openai", "gpt-5"): "gpt-5",
    ("openai", "o3"): "o3",
    ("google", "gemini-2.5-pro"): "gemini/gemini-2.5-pro",
    ("google", "gemini-2.5-flash"): "gemini/gemini-2.5-flash",
    ("openai", "gpt-4o-mini"): "gpt-4o-mini",
    ("groq", "qwen/qwen3.8-27b"): "groq/qwen/qwen3.8-27b",  # no cache-read price: billed at input
}
EXTRA_CANDIDATE = "groq/qwen/qwen3.8-27b"
COUNTERFACTUAL_VARS = f"{{counterfactual_models: [{EXTRA_CANDIDATE}]}}"
TIER_SUFFIX = {"standard": "", "batch": "_batches", "flex": "_flex", "priority": "_priority"}
BASE_KEY = {
    "input": "input_cost_per_token",
    "output": "output_cost_per_token",
    "cache_read": "cache_read_input_token_cost",
    "cache_write": "cache_creation_input_token_cost",
    "cache_write_1h": "cache_creation_input_token_cost_above_1hr",
    "reasoning": "output_cost_per_reasoning_token",
}
PARENTS = {
    "input": [],
    "output": [],
    "cache_read": ["input"],
    "cache_write": ["input"],
    "cache_write_1h": ["cache_write", "input"],
    "reasoning": ["output"],
}


class SnapshotPrices:
    """Section 14's rule, read from the JSON: per-token prices x 1e6, fallbacks resolved here."""

    def __init__(self) -> None:
        self.entries = json.loads(SNAPSHOT.read_text(), parse_float=Decimal)

    def threshold(self, entry: dict) -> int | None:
        found = {int(m.group(1)) * 1000 for key in entry if (m := re.search(r"_above_(\d+)k_tokens", key))}
        return min(found) if found else None

    def stated(self, entry: dict, cls: str, tier: str, above: int | None) -> Decimal | None:
        side = f"_above_{above // 1000}k_tokens" if above else ""
        value = entry.get(BASE_KEY[cls] + side + TIER_SUFFIX[tier])
        return None if value is None else Decimal(str(value)) * 1_000_000

    def price(self, entry: dict, cls: str, tier: str, above: int | None) -> Decimal:
        """The class's own price in the tier and side, else its parents' there, else the standard tier's."""
        for candidate in [cls, *PARENTS[cls]]:
            value = self.stated(entry, candidate, tier, above)
            if value is not None:
                return value
        if tier != "standard":
            return self.price(entry, cls, "standard", above)
        assert above, f"no standard {cls} price below the threshold"
        return self.price(entry, cls, "standard", None)

    @exact
    def __call__(self, provider: str, model: str, day: dt.date, row: dict) -> ClassPrice | None:
        key = LITELLM_KEYS.get((provider, model))
        if key is None or day < AS_OF:
            return None
        entry = self.entries[key]
        tier = service_tier(row.get("service_tier"))
        tokens_input = row["tokens_input"] or 0
        threshold = self.threshold(entry)
        above = threshold if threshold is not None and tokens_input > threshold else None
        counts = {
            "cache_read": row.get("tokens_cache_read") or 0,
            "cache_write": row.get("tokens_cache_write") or 0,
            "cache_write_1h": row.get("tokens_cache_write_1h") or 0,
            "reasoning": row.get("tokens_reasoning") or 0,
        }
        counts["input"] = tokens_input - counts["cache_read"] - counts["cache_write"] - counts["cache_write_1h"]
        counts["output"] = (row["tokens_output"] or 0) - counts["reasoning"]
        prices = {cls: self.price(entry, cls, tier, above) for cls in BASE_KEY}
        priced = sum(counts[cls] * prices[cls] for cls in BASE_KEY) * MICRO
        saved = sum(
            counts[cls] * (prices["input"] - prices[cls]) for cls in ("cache_read", "cache_write", "cache_write_1h")
        )
        return ClassPrice(priced=priced, prompt_cache_savings=saved * MICRO)


def class_rows(now: dt.datetime) -> list[dict]:
    """Requests of every class, tier and threshold case, and rows section 14 quarantines."""
    day = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(days=2)
    rows = []

    def add(hour: int, provider: str, model: str, tin: int, tout: int, project=PROJECT, **extra) -> None:
        row = {
            "id": uuid.uuid4(),
            "project_id": project,
            "created_at": day + dt.timedelta(hours=hour, minutes=len(rows) % 60),
            "provider": provider,
            "model": model,
            "tokens_input": tin,
            "tokens_output": tout,
            "cost_usd": None,
            "potential_cost_usd": None,
            "cached": False,
            "latency_ms": 300 + len(rows),
            "tokens_cache_read": None,
            "tokens_cache_write": None,
            "tokens_cache_write_1h": None,
            "tokens_reasoning": None,
            "service_tier": None,
        }
        row.update(extra)
        rows.append(row)

    # claude-sonnet-4-5: cache read, 5-minute and 1-hour writes; batch with cache reads
    add(1, "anthropic", "claude-sonnet-4-5", 120_000, 2_000, tokens_cache_read=100_000, tokens_cache_write=10_000)
    add(1, "anthropic", "claude-sonnet-4-5", 50_000, 800, tokens_cache_write_1h=40_000)
    add(1, "anthropic", "claude-sonnet-4-5", 30_000, 500, tokens_cache_read=20_000, service_tier="batch")
    add(
        1,
        "anthropic",
        "claude-sonnet-4-5",
        9_000,
        100,
        tokens_cache_read=1_000,
        tokens_cache_write=1_000,
        tokens_cache_write_1h=1_000,
        service_tier="Batch",
    )  # batch has no 1-hour write price: its cache write
    # a write-heavy request: the prompt cache cost more than it saved (negative savings)
    add(2, "anthropic", "claude-sonnet-4-5", 60_000, 100, tokens_cache_write_1h=60_000)
    # gpt-5: cache reads in every tier, reasoning tokens, and tiers as a client may spell them
    for tier in (None, "standard", "batch", "flex", "priority", " PRIORITY ", "turbo", ""):
        add(3, "openai", "gpt-5", 40_000, 6_000, tokens_cache_read=32_000, tokens_reasoning=4_000, service_tier=tier)
    # o3: a reasoning model whose reasoning tokens cost the output price
    add(3, "openai", "o3", 5_000, 9_000, tokens_reasoning=8_000, service_tier="flex")
    # gemini-2.5-pro: a prompt on each side of 200k, with cache reads, in standard and priority
    add(4, "google", "gemini-2.5-pro", 150_000, 3_000, tokens_cache_read=100_000)
    add(4, "google", "gemini-2.5-pro", 200_000, 3_000, tokens_cache_read=100_000)  # not above: exactly 200k
    add(4, "google", "gemini-2.5-pro", 250_000, 3_000, tokens_cache_read=200_000)
    add(4, "google", "gemini-2.5-pro", 250_001, 3_000, tokens_cache_read=10, service_tier="priority")
    add(4, "google", "gemini-2.5-pro", 300_000, 3_000, service_tier="flex")
    add(5, "google", "gemini-2.5-flash", 10_000, 7_000, tokens_reasoning=6_000)
    # a cache hit of the proxy: its potential cost comes from its classes; nothing saved by prompt caching
    add(5, "anthropic", "claude-sonnet-4-5", 80_000, 1_000, cached=True, cost_usd=Decimal(0), tokens_cache_read=70_000)
    add(5, "openai", "gpt-5", 20_000, 2_000, cached=True, tokens_cache_read=10_000, service_tier="batch")
    # a recorded cost: kept as logged; the prompt-cache savings still priced from the list
    add(6, "openai", "gpt-5", 10_000, 1_000, cost_usd=Decimal("0.0123"), tokens_cache_read=8_000)
    # an unpriced model with cache reads: its prompt-cache savings unknown
    add(6, "openai", "gpt-unknown-next", 10_000, 1_000, tokens_cache_read=5_000)
    # another project, rows without classes (NULL counts are 0)
    add(6, "openai", "gpt-4o-mini", 1_000, 100, project=OTHER)
    add(6, "openai", "gpt-5", 1_000, 100, project=OTHER, cached=True)
    # quarantined: class counts larger than the totals, negative counts
    add(7, "openai", "gpt-5", 1_000, 100, tokens_cache_read=900, tokens_cache_write=200)
    add(7, "openai", "gpt-5", 1_000, 100, tokens_reasoning=101)
    add(7, "anthropic", "claude-sonnet-4-5", 1_000, 100, tokens_cache_write_1h=-1)
    add(
        7,
        "openai",
        "gpt-5",
        2_000_000_000,
        100,
        tokens_cache_read=2_000_000_000,
        tokens_cache_write=2_000_000_000,
        tokens_cache_write_1h=2_000_000_000,
    )  # overflows an integer sum: must be judged, not crash the build
    return rows


def insert_class_rows(db, rows: list[dict]) -> None:
    insert_rows(db, rows)
    with db.connect() as conn:
        for row in rows:
            conn.execute(
                "update public.usage_logs set tokens_cache_read = %s, tokens_cache_write = %s,"
                " tokens_cache_write_1h = %s, tokens_reasoning = %s, service_tier = %s where id = %s",
                (
                    row["tokens_cache_read"],
                    row["tokens_cache_write"],
                    row["tokens_cache_write_1h"],
                    row["tokens_reasoning"],
                    row["service_tier"],
                    row["id"],
                ),
            )


def raw_class_rows(db) -> list[dict]:
    return db.query(
        "select id, project_id, created_at, provider, model, tokens_input, tokens_output, cost_usd,"
        " potential_cost_usd, cached, latency_ms, tokens_cache_read, tokens_cache_write, tokens_cache_write_1h,"
        " tokens_reasoning, service_tier from public.usage_logs"
    )


@pytest.fixture(scope="module")
def built(make_db):
    db = make_db("wl_test_token_classes")
    db.generate(rows=0, days=1, projects=1, seed=14)  # the proxy's table, as the generator creates it
    with db.connect() as conn:
        conn.execute(CLASS_COLUMNS_DDL)
    db.class_rows = rows = class_rows(db.now())
    insert_class_rows(db, rows)
    db.dbt("build", "--vars", COUNTERFACTUAL_VARS)
    raw = raw_class_rows(db)
    reference = compute(raw, load_prices(SEED), db.now(), class_prices=SnapshotPrices())
    return db, reference, raw


def test_every_output_table_prices_each_class_tier_and_threshold_as_the_list_states(built):
    db, reference, _ = built
    for name, (keys, attribute) in GRAINS.items():
        assert_tables_equal(table(db, name, keys), getattr(reference, attribute), name)
    hourly = table(db, "usage_aggregations_hourly", ("project_id", "hour_start"))
    assert sum(r["tokens_cache_read"] for r in hourly.values()) > 0
    savings = [r["prompt_cache_savings_usd"] for r in hourly.values() if r["prompt_cache_savings_usd"]]
    assert any(v < 0 for v in savings) and any(v > 0 for v in savings)


def test_the_new_cleaning_reasons_quarantine_rows(built):
    db, reference, _ = built
    rejected = {r["id"]: r["reason"] for r in db.query("select id, reason from analytics.usage_logs_rejected")}
    assert rejected == reference.rejected
    reasons = set(rejected.values())
    assert "tokens_cache_read + tokens_cache_write + tokens_cache_write_1h exceed tokens_input" in reasons
    assert "tokens_reasoning exceeds tokens_output" in reasons
    assert "tokens_cache_write_1h is negative" in reasons


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kathmandu"])
def test_the_dashboard_carries_the_classes_and_prompt_cache_savings(built, zone):
    db, reference, _ = built
    actual = db.query("select * from public.get_dashboard_stats(%s, %s, %s)", (PROJECT, 7, zone))
    assert_dashboard_matches(actual, reference.local_dashboard(PROJECT, 7, zone, db.now()), zone)
    assert sum(r["tokens_reasoning"] for r in actual) > 0
    assert sum(r["prompt_cache_savings_usd"] or 0 for r in actual) != 0


@exact
def test_the_counterfactual_prices_the_same_class_counts_at_each_candidates_own_prices(built):
    """Every candidate (the models used, and one without a cache-read price) against every request."""
    db, reference, raw = built
    prices = SnapshotPrices()
    kept = {r["id"]: r for r in raw if r["id"] not in reference.rejected}
    requests = {r.created_at: r for r in reference.requests}
    actual = {
        (r["project_id"], r["provider"], r["model"]): r
        for r in db.query("select * from analytics.model_cost_counterfactual_monthly")
    }
    candidates = {(r.provider, r.model) for r in reference.requests if (r.provider, r.model) in LITELLM_KEYS}
    candidates.add(tuple(EXTRA_CANDIDATE.split("/", 1)))
    for project in {r.project_id for r in reference.requests}:
        for provider, model in sorted(candidates):
            cost = potential = actual_cost = Decimal(0)
            for row in kept.values():
                if row["project_id"] != project:
                    continue
                request = requests[row["created_at"]]
                listed = prices(provider, model, request.day, row).priced
                potential += listed
                cost += Decimal(0) if request.cached else listed
                actual_cost += request.cost or 0
            got = actual[(project, provider, model)]
            assert got["counterfactual_potential_cost_usd"] == potential, (project, provider, model)
            assert got["counterfactual_cost_usd"] == cost, (project, provider, model)
            assert got["actual_cost_usd"] == actual_cost, (project, provider, model)
    qwen = [r for k, r in actual.items() if k[1:] == tuple(EXTRA_CANDIDATE.split("/", 1))]
    assert qwen and all(r["priced_requests"] == r["total_requests"] for r in qwen)


def test_stats_and_the_report_say_what_provider_prompt_caching_saved(built, tmp_path):
    db, reference, _ = built
    days = reference.local_dashboard(PROJECT, 7, "UTC", db.now())
    saved = sum((d["prompt_cache_savings_usd"] or 0 for d in days), Decimal(0))
    assert saved != 0
    stats = db.cli("stats", str(PROJECT), "--days", "7").stdout
    assert f"provider prompt caching saved ${saved:,.2f}" in stats
    out = tmp_path / "report"
    db.cli("report", str(PROJECT), "--days", "7", "--out", str(out))
    page = (out / "report.html").read_text()
    shown = re.search(
        r'<tr data-figure="prompt_cache_savings"><th>([^<]*)</th><td class="this" data-value="([^"]*)"', page
    )
    assert shown and shown.group(1) == "Provider prompt caching saved" and Decimal(shown.group(2)) == saved


@pytest.mark.spark
def test_spark_builds_the_same_classes_through_export_and_publish(built, make_db, tmp_path_factory):
    """The same rows exported to a local Spark, built there and published: every table equal."""
    pytest.importorskip("pyspark", reason="the Spark extras are not installed: run `make setup-spark`")
    from test_spark import OUTPUTS, spark_env

    db, _, _ = built
    published = make_db("wl_test_token_classes_spark")
    published.generate(rows=0, days=1, projects=1, seed=14)
    with published.connect() as conn:
        conn.execute(CLASS_COLUMNS_DDL)
    insert_class_rows(published, db.class_rows)
    published.build_models()
    with published.connect() as conn:  # the Postgres tables exist, empty: publish fills them
        conn.execute("truncate " + ", ".join(f"analytics.{name}" for name in OUTPUTS))
    env = spark_env(tmp_path_factory.mktemp("spark_classes"))
    published.cli("spark", "export-logs", extra_env=env)
    build = published.cli(
        "dbt", "build", "--target", "spark", "--vars", COUNTERFACTUAL_VARS, extra_env=env, timeout=1200
    )
    assert "ERROR=0" in build.stdout, build.stdout[-3000:]
    published.cli("spark", "publish", extra_env=env)
    for name, keys in OUTPUTS.items():
        assert_tables_equal(table(published, name, keys), table(db, name, keys), f"{name} on Spark")
    hourly = table(published, "usage_aggregations_hourly", ("project_id", "hour_start"))
    assert sum(r["tokens_cache_read"] for r in hourly.values()) > 0


# The tables and their order, for the digest below.
DIGESTED = {
    "int_usage_hourly_by_model": "project_id, hour_start, provider, model",
    "usage_aggregations_hourly": "project_id, hour_start",
    "usage_aggregations_daily": "project_id, date",
    "usage_by_model_daily": "project_id, date, provider, model",
    "project_savings_monthly": "project_id, month",
    "model_cost_counterfactual_monthly": "project_id, month, provider, model",
    "usage_logs_rejected": "id",
}
DIGEST = REPO / "pytests" / "data" / "figures_without_token_classes.json"


def test_a_usage_logs_without_the_class_columns_gives_exactly_the_figures_of_before(make_db):
    """The digest of every output's columns, stored from a build of the same generated rows by the
    release before token classes (commit fb2c74b): md5 of every row as text, in grain order."""
    stored = json.loads(DIGEST.read_text())
    db = make_db("wl_test_token_classes_absent")
    db.cli(
        "generate", "--rows", "30000", "--days", "3", "--projects", "5", "--seed", "41", "--messy",
        "--end", "2026-11-20T12:00:00+00:00", "--allow-external",
    )  # fmt: skip
    db.dbt("build", "--exclude-resource-type", "unit_test")
    with db.connect(timezone="UTC") as conn:  # timestamps as text in UTC, as the digest was taken
        for name, order in DIGESTED.items():
            columns = ", ".join(f'"{c}"' for c in stored[name]["columns"])
            got = conn.execute(
                f"select md5(coalesce(string_agg(r::text, E'\\n' order by {order}), '')), count(*)"
                f" from (select {columns} from analytics.{name}) as r"
            ).fetchone()
            assert tuple(got.values()) == (stored[name]["md5"], stored[name]["rows"]), name
    classes = db.query(
        "select sum(tokens_cache_read) as cache_read, sum(prompt_cache_savings_usd) as saved"
        " from analytics.usage_aggregations_daily"
    )[0]
    assert classes == {"cache_read": 0, "saved": 0}
    # nor the columns of section 15: no errors, and no key, end-user or tag rows
    attribution = db.query(
        "select (select sum(error_requests) from analytics.usage_aggregations_daily) as errors,"
        " (select count(*) from analytics.int_usage_hourly_by_dimension) as hourly_rows,"
        " (select count(*) from analytics.usage_by_dimension_daily) as daily_rows"
    )[0]
    assert attribution == {"errors": 0, "hourly_rows": 0, "daily_rows": 0}


def test_reconcile_prices_each_request_by_class_like_the_aggregates(built):
    """int_usage_logs_priced (reconcile's and backfill-potential-cost's row-level side) applies the
    same class, tier and threshold prices as the hourly pass."""
    db, _, _ = built
    out = db.cli("reconcile", "--days", "7").stdout
    assert "every closed day of the last 7 agrees with the raw rows" in out
    classes = db.query(
        "select count(*) as rows from analytics.int_usage_logs_priced as p"
        " join public.usage_logs as l on l.id = p.request_id where l.tokens_cache_read > 0"
    )[0]
    assert classes["rows"] > 0
