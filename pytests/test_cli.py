"""The runner CLI: database commands, generator, stats, pricing import, backfill, and their errors."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import REPO, SEED, Db, raw_rows
from reference import compute, effective, load_prices

from orchestration import settings

SNAPSHOTS = settings.PRICE_SNAPSHOTS_DIR
OLD_SNAPSHOT = SNAPSHOTS / "litellm-1.53.1-model-prices.json"
NEW_SNAPSHOT = SNAPSHOTS / "litellm-1.110.2-model-prices.json"
END = "2026-11-20T12:00"


def run_cli(*args: str, env: dict | None = None, check: bool = False) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    result = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *args],
        cwd=REPO,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def db(make_db) -> Db:
    db = make_db("wl_test_cli")
    db.generate(rows=5000, days=40, projects=8, seed=5, end=END)
    db.build_models()
    return db


# --- db ---------------------------------------------------------------------------------------------


def test_db_url_and_status_describe_the_running_embedded_server(server):
    url = run_cli("db", "url", check=True).stdout.strip()
    assert url.startswith("postgresql://postgres@/watchllm?host=")
    assert "running" in run_cli("db", "status", check=True).stdout
    assert "running" in run_cli("db", "start", check=True).stdout  # idempotent


def test_db_start_stop_cycle_in_a_separate_data_dir(tmp_path):
    env = {"WATCHLLM_DATA_DIR": str(tmp_path / "data")}
    assert run_cli("db", "status", env=env).returncode == 3
    assert "running" in run_cli("db", "start", env=env, check=True).stdout
    assert "running" in run_cli("db", "start", env=env, check=True).stdout
    assert "stopped" in run_cli("db", "stop", env=env, check=True).stdout
    assert "was not running" in run_cli("db", "stop", env=env, check=True).stdout
    assert_one_line_error(run_cli("db", "url", env=env), "not running", "db start")


def test_with_pg_variables_set_db_start_uses_that_database():
    result = run_cli("db", "start", env={"PGHOST": "127.0.0.1", "PGPORT": "1"}, check=True)
    assert "PG* variables are set" in result.stdout and "127.0.0.1:1" in result.stdout


def test_refused_connection_is_one_clear_line():
    result = run_cli(
        "stats",
        "e0000000-0000-0000-0000-000000000001",
        env={"PGHOST": "127.0.0.1", "PGPORT": "1", "PGUSER": "x", "PGDATABASE": "x"},
    )
    assert_one_line_error(result, "PGHOST is set but the server at 127.0.0.1:1 refused the connection")


# --- generate ---------------------------------------------------------------------------------------


def test_generate_is_deterministic_and_rerunning_adds_nothing(make_db):
    one, two = make_db("wl_test_gen_a"), make_db("wl_test_gen_b")
    args = (
        "generate",
        "--rows",
        "3000",
        "--days",
        "7",
        "--projects",
        "5",
        "--seed",
        "9",
        "--messy",
        "--end",
        END,
        "--allow-external",
    )
    one.cli(*args)
    two.cli(*args)
    again = one.cli(*args)
    assert "inserted 0 rows" in again.stdout
    digest = "select md5(string_agg(u::text, ',' order by id)) as d from public.usage_logs as u"
    assert one.query(digest) == two.query(digest)
    rows = raw_rows(one)
    assert len(rows) == 3000
    cached = sum(1 for r in rows if r["cached"])
    assert 0.25 <= cached / len(rows) <= 0.45
    assert any(r["potential_cost_usd"] is None for r in rows)  # rows from before migration 004
    assert len({r["project_id"] for r in rows} - {None}) == 5


def test_generate_messy_produces_every_kind_of_bad_row(db):
    reasons = {
        r
        for (r,) in [
            tuple(x.values())
            for x in db.query(
                "select distinct unnest(string_to_array(reason, '; ')) from analytics.usage_logs_rejected"
            )
        ]
    }
    assert len(reasons) == 7, reasons


def test_generate_refuses_an_external_database_without_the_flag(db):
    result = db.cli("generate", "--rows", "10", check=False)
    assert_one_line_error(result, "refusing to write synthetic rows", "--allow-external")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--rows", "-1"), "--rows must be 0 or more"),
        (("--days", "0"), "--days must be more than 0"),
        (("--projects", "0"), "--projects must be at least 1"),
        (("--end", "tomorrow"), "--end must be an ISO date or time"),
    ],
)
def test_generate_bad_arguments(db, args, message):
    assert_one_line_error(db.cli("generate", *args, "--allow-external", check=False), message)


# --- stats ------------------------------------------------------------------------------------------


def test_stats_prints_the_dashboard_table(db):
    project = db.query(
        "select project_id from analytics.usage_aggregations_daily group by 1 order by sum(total_requests) desc limit 1"
    )[0]["project_id"]
    out = db.cli("stats", str(project), "--days", "10").stdout
    assert "requests" in out and "hit rate" in out
    assert len([line for line in out.splitlines() if line[:4].isdigit()]) == 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("not-a-uuid",), "is not a UUID"),
        (("e0000000-0000-0000-0000-00000000dead",), "unknown project"),
        (("e0000000-0000-0000-0000-00000000dead", "--days", "-3"), "--days must be between 1 and 366"),
        (("e0000000-0000-0000-0000-00000000dead", "--days", "400"), "--days must be between 1 and 366"),
    ],
)
def test_stats_bad_arguments(db, args, message):
    assert_one_line_error(db.cli("stats", *args, check=False), message)


# --- pricing import ---------------------------------------------------------------------------------


def read(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_pricing_import_builds_the_committed_seed_from_the_real_snapshots(tmp_path):
    seed = tmp_path / "model_pricing.csv"
    shutil.copy(REPO / "pricing" / "known_price_history.csv", seed)
    history = read(seed)
    first = run_cli(
        "pricing",
        "import",
        str(OLD_SNAPSHOT),
        "--as-of",
        "2024-11-28",
        "--seed",
        str(seed),
        "--source",
        "LiteLLM 1.53.1 model_prices_and_context_window.json",
        check=True,
    )
    assert "models added" in first.stdout
    after_first = read(seed)
    second = run_cli(
        "pricing",
        "import",
        str(NEW_SNAPSHOT),
        "--as-of",
        "2026-11-01",
        "--seed",
        str(seed),
        "--source",
        "LiteLLM 1.110.2 model_prices_and_context_window.json",
        check=True,
    )
    assert "repriced" in second.stdout
    final = read(seed)
    assert final == read(SEED), "seeds/model_pricing.csv is not what `make pricing-seed` produces"

    # nothing is ever deleted: every earlier period is still there (an open one may have been closed)
    def key(r):
        return (
            r["provider"],
            r["model"],
            r["model_pattern"],
            r["valid_from"],
            r["service_tier"],
            r["above_input_tokens"],
        )

    history = [
        {**r, "service_tier": r["service_tier"] or "standard", "above_input_tokens": r["above_input_tokens"] or "0"}
        for r in history
    ]
    for earlier in (history, after_first):
        final_by_key = {key(r): r for r in final}
        for row in earlier:
            kept = final_by_key[key(row)]
            assert {k: v for k, v in kept.items() if k != "valid_to"} == {
                k: v for k, v in row.items() if k != "valid_to"
            }
            assert row["valid_to"] in ("", kept["valid_to"])

    standard = [r for r in final if (r["service_tier"], r["above_input_tokens"]) == ("standard", "0")]
    deepseek = [r for r in standard if (r["provider"], r["model"]) == ("deepseek", "deepseek-chat")]
    assert [(r["valid_from"], r["valid_to"], r["input_usd_per_1m"], r["output_usd_per_1m"]) for r in deepseek] == [
        ("2024-11-28", "2026-11-01", "0.14", "0.28"),
        ("2026-11-01", "", "0.28", "0.42"),
    ]
    gpt4o = [r for r in standard if (r["provider"], r["model"]) == ("openai", "gpt-4o")]
    assert [(r["valid_from"], r["valid_to"], r["input_usd_per_1m"]) for r in gpt4o] == [
        ("2024-05-13", "2024-10-02", "5"),
        ("2024-10-02", "2026-11-01", "2.5"),
        ("2026-11-01", "", "2.5"),  # the 2026 list adds the priority tier: a new period
    ]
    # a tier an older list leaves out (LiteLLM 1.53.1 has no batch prices) is carried, not ended
    gpt4o_batch = [r for r in final if (r["model"], r["service_tier"]) == ("gpt-4o", "batch")]
    assert [(r["valid_from"], r["valid_to"], r["input_usd_per_1m"]) for r in gpt4o_batch] == [
        ("2024-10-02", "2026-11-01", "1.25"),
        ("2026-11-01", "", "1.25"),
    ]
    assert all(r["source"] for r in final)
    assert {r["provider"] for r in final} >= {"openai", "anthropic", "google", "groq", "mistral", "deepseek"}

    again = run_cli("pricing", "import", str(NEW_SNAPSHOT), "--as-of", "2026-11-01", "--seed", str(seed), check=True)
    assert "0 models added, 0 repriced" in again.stdout
    assert read(seed) == final


# LiteLLM's name of each token class's price, and of each tier's suffix (docs/pricing.md)
LITELLM_CLASS_KEYS = {
    "input_usd_per_1m": "input_cost_per_token",
    "output_usd_per_1m": "output_cost_per_token",
    "cache_read_usd_per_1m": "cache_read_input_token_cost",
    "cache_write_usd_per_1m": "cache_creation_input_token_cost",
    "cache_write_1h_usd_per_1m": "cache_creation_input_token_cost_above_1hr",
    "reasoning_usd_per_1m": "output_cost_per_reasoning_token",
}
LITELLM_TIER_SUFFIXES = {"standard": "", "batch": "_batches", "flex": "_flex", "priority": "_priority"}


@pytest.mark.parametrize(
    "provider, model, litellm_key, threshold",
    [
        ("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5", None),
        ("openai", "gpt-5", "gpt-5", None),
        ("google", "gemini-2.5-pro", "gemini/gemini-2.5-pro", 200_000),
        ("openai", "o3", "o3", None),
    ],
)
def test_pricing_import_carries_every_class_tier_and_threshold_the_list_states(provider, model, litellm_key, threshold):
    """The committed seed's current period of a model, row by row, against the 2026 snapshot read here."""
    import json

    listed = json.loads(NEW_SNAPSHOT.read_text(), parse_float=Decimal)[litellm_key]
    expected = {}
    for side in [0] + ([threshold] if threshold else []):
        for tier, suffix in LITELLM_TIER_SUFFIXES.items():
            above = f"_above_{side // 1000}k_tokens" if side else ""
            prices = {
                column: Decimal(str(listed[name + above + suffix])) * 1_000_000
                for column, name in LITELLM_CLASS_KEYS.items()
                if name + above + suffix in listed
            }
            if prices:
                expected[(tier, str(side))] = prices
    assert ("standard", "0") in expected and len(expected) > 1, "the model's list entry has no tiers"
    current = [r for r in read(SEED) if (r["provider"], r["model"]) == (provider, model) and not r["valid_to"]]
    assert {r["valid_from"] for r in current} == {"2026-11-01"}
    got = {
        (r["service_tier"], r["above_input_tokens"]): {c: Decimal(r[c]) for c in LITELLM_CLASS_KEYS if r[c]}
        for r in current
    }
    assert got == expected
    assert all(r["source"] == f"LiteLLM 1.110.2 model_prices_and_context_window.json ({litellm_key})" for r in current)


def test_pricing_import_errors(tmp_path):
    seed = tmp_path / "model_pricing.csv"
    shutil.copy(SEED, seed)
    assert_one_line_error(
        run_cli("pricing", "import", str(tmp_path / "missing.json"), "--as-of", "2026-01-01", "--seed", str(seed)),
        "does not exist",
    )
    assert_one_line_error(
        run_cli("pricing", "import", str(OLD_SNAPSHOT), "--as-of", "last week", "--seed", str(seed)),
        "--as-of must be a date",
    )
    assert_one_line_error(
        run_cli("pricing", "import", str(OLD_SNAPSHOT), "--as-of", "2024-01-01", "--seed", str(seed)),
        "import price lists oldest first",
    )
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert_one_line_error(
        run_cli("pricing", "import", str(bad), "--as-of", "2027-01-01", "--seed", str(seed)), "is not valid JSON"
    )


# --- backfill-potential-cost ------------------------------------------------------------------------


def candidates(db: Db) -> list[dict]:
    return db.query(
        "select id, potential_cost_usd from public.usage_logs"
        " where cached and (potential_cost_usd is null or potential_cost_usd = 0)"
    )


def test_backfill_dry_run_counts_and_changes_nothing(db):
    before = raw_rows(db)
    out = db.cli("backfill-potential-cost", "--dry-run").stdout
    assert f"{len(candidates(db)):,} cached rows have potential_cost_usd 0 or NULL" in out
    assert raw_rows(db) == before


def test_backfill_resumes_after_interruption_and_never_overwrites(db):
    before = {r["id"]: r for r in raw_rows(db)}
    aggregates_before = db.query("select * from analytics.usage_aggregations_daily order by 1, 2")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PG")}, **db.env}
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestration.cli", "backfill-potential-cost", "--batch-size", "5"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    for line in process.stdout:
        if line.startswith("batch 3:"):
            process.send_signal(signal.SIGKILL)
            break
    process.wait()
    partly = {r["id"]: r for r in raw_rows(db)}
    changed = [i for i in before if partly[i]["potential_cost_usd"] != before[i]["potential_cost_usd"]]
    assert 0 < len(changed) < len(candidates_of(before))

    out = db.cli("backfill-potential-cost", "--batch-size", "50").stdout
    assert "done:" in out
    after = {r["id"]: r for r in raw_rows(db)}
    prices = load_prices(SEED)
    now = db.now()
    for row_id, old in before.items():
        new = after[row_id]
        assert {k: v for k, v in new.items() if k != "potential_cost_usd"} == {
            k: v for k, v in old.items() if k != "potential_cost_usd"
        }
        is_candidate = old["cached"] and (old["potential_cost_usd"] in (None, 0))
        kept = compute([old], prices, now).requests
        if not is_candidate or not kept:
            assert new["potential_cost_usd"] == old["potential_cost_usd"], row_id  # never touched
        else:
            expected = effective(old, prices).potential
            assert new["potential_cost_usd"] == (expected if expected else old["potential_cost_usd"])
    # the models already priced those rows the same way: rebuilding changes no aggregate
    db.dbt("run", "--vars", "{start: '2026-10-01', end: '2026-11-21'}")
    assert db.query("select * from analytics.usage_aggregations_daily order by 1, 2") == aggregates_before
    assert "0 rows updated" in db.cli("backfill-potential-cost").stdout


def candidates_of(rows: dict) -> list:
    return [r for r in rows.values() if r["cached"] and r["potential_cost_usd"] in (None, Decimal(0))]


def test_backfill_before_any_build_says_what_to_do(make_db):
    empty = make_db("wl_test_cli_empty")
    empty.cli("generate", "--rows", "10", "--end", END, "--allow-external")
    assert_one_line_error(empty.cli("backfill-potential-cost", check=False), "dbt build")
    assert_one_line_error(empty.cli("backfill-potential-cost", "--batch-size", "0", check=False), "--batch-size")


def test_dbt_passthrough_reports_dbt_version(db):
    assert "1.11" in db.cli("dbt", "--version").stdout + db.cli("dbt", "--version").stderr
