"""model_cost_counterfactual_monthly and project_cost_forecast against independent computations."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from conftest import SEED, insert_rows, raw_rows, request, utc
from reference import Price, compute, counterfactual, load_prices

CANDIDATE = ("openai", "gpt-test-candidate")  # priced only from the middle of the month (var counterfactual_models)
RETIRED = ("openai", "gpt-test-retired")  # priced only until the 10th of the month, nothing after (var too)
NEW_PROJECT = uuid.UUID("f0ca0000-0000-0000-0000-000000000001")  # one day of history


def prices_in(db) -> list[Price]:
    return [
        Price(
            r["provider"],
            r["model"],
            r["model_pattern"],
            r["input_usd_per_1m"],
            r["output_usd_per_1m"],
            r["valid_from"],
            r["valid_to"],
        )
        for r in db.query(
            "select * from analytics.stg_pricing__model_prices"
            " where service_tier = 'standard' and above_input_tokens = 0"
        )
    ]


@pytest.fixture(scope="module")
def built(make_db):
    db = make_db("wl_test_counterfactual")
    db.generate(rows=30_000, days=45, projects=8, seed=41)
    now = db.now()
    month = now.astimezone(dt.UTC).date().replace(day=1) - dt.timedelta(days=1)
    month = month.replace(day=1)  # the last complete month: all of it is in the data
    middle = month.replace(day=15)
    yesterday = now.astimezone(dt.UTC).date() - dt.timedelta(days=1)
    insert_rows(
        db,
        [
            request(NEW_PROJECT, dt.datetime.combine(yesterday, dt.time(h), dt.UTC), cost_usd=Decimal("0.5"))
            for h in (9, 13)
        ],
    )
    db.dbt("build")
    with db.connect() as conn:
        # a candidate whose price changes in the middle of the month, and one priced only from then on
        changed = conn.execute(
            "select provider, model, input_usd_per_1m, output_usd_per_1m, valid_from from analytics.model_pricing"
            " where provider = 'openai' and model = 'gpt-4o-mini' and valid_to is null and service_tier = 'standard'"
        ).fetchone()
        conn.execute(
            "update analytics.model_pricing set valid_to = %s"
            " where provider = 'openai' and model = 'gpt-4o-mini' and valid_to is null",
            (middle,),
        )
        conn.execute(
            "insert into analytics.model_pricing"
            " (provider, model, input_usd_per_1m, output_usd_per_1m, valid_from, source)"
            " values ('openai', 'gpt-4o-mini', %s, %s, %s, 'test: a mid-month price change'),"
            " ('openai', 'gpt-test-candidate', 0.07, 0.7, %s, 'test: a candidate priced from mid-month')",
            (changed["input_usd_per_1m"] * 2, changed["output_usd_per_1m"] * 3, middle, middle),
        )
        # a price period that ends inside the month with none after it: three segments in the month
        conn.execute(
            "insert into analytics.model_pricing"
            " (provider, model, input_usd_per_1m, output_usd_per_1m, valid_from, valid_to, source)"
            " values ('openai', 'gpt-test-retired', 0.3, 1.1, %s, %s, 'test: a candidate priced until the 10th')",
            (month - dt.timedelta(days=40), month.replace(day=10)),
        )
    next_month = (month + dt.timedelta(days=32)).replace(day=1)
    db.dbt(
        "run",
        "--select",
        "int_model_prices_resolved",  # the prices as the edited seed table now has them
        "model_cost_counterfactual_monthly",
        "--vars",
        f"{{start: '{month}', end: '{next_month}',"
        f" counterfactual_models: ['{'/'.join(CANDIDATE)}', '{'/'.join(RETIRED)}']}}",
    )
    # the marts were built at the seed's prices; only the counterfactual was rebuilt at the changed ones
    reference = compute(raw_rows(db), load_prices(SEED), db.now())
    expected = counterfactual(reference.requests, prices_in(db), extra=(CANDIDATE, RETIRED))
    return db, reference, expected, month


def test_every_candidate_of_every_project_equals_the_reference(built):
    db, _, expected, month = built
    actual = {
        (r["project_id"], r["month"], r["provider"], r["model"]): {
            k: v for k, v in r.items() if k not in ("project_id", "month", "provider", "model")
        }
        for r in db.query("select * from analytics.model_cost_counterfactual_monthly where month = %s", (month,))
    }
    wanted = {k: v for k, v in expected.items() if k[1] == month}
    assert set(actual) == set(wanted)
    for key, row in wanted.items():
        assert actual[key] == row, key
    assert len({k[2:] for k in wanted}) > 5  # many candidates


def test_a_candidate_priced_from_mid_month_covers_only_those_days(built):
    db, _, expected, month = built
    rows = [v for k, v in expected.items() if k[1] == month and k[2:] == CANDIDATE]
    assert rows and all(0 < r["priced_requests"] < r["total_requests"] for r in rows if r["total_requests"] > 50)
    mini = [v for k, v in expected.items() if k[1] == month and k[2:] == ("openai", "gpt-4o-mini")]
    assert all(r["priced_requests"] == r["total_requests"] for r in mini)  # priced all month, at two prices
    retired = [v for k, v in expected.items() if k[1] == month and k[2:] == RETIRED]
    assert retired and all(0 < r["priced_requests"] < r["total_requests"] for r in retired if r["total_requests"] > 50)


def test_cache_hits_cost_nothing_on_any_candidate(built):
    _, _, expected, month = built
    for key, row in expected.items():
        if row["priced_requests"]:
            assert row["counterfactual_cost_usd"] <= row["counterfactual_potential_cost_usd"], key


def test_compare_prints_the_candidates_cheapest_first(built):
    db, _, expected, month = built
    busiest = max(
        (row["total_requests"], key[0]) for key, row in expected.items() if key[1] == month and key[2:] == CANDIDATE
    )
    project = busiest[1]
    result = db.cli("compare", str(project), "--month", month.strftime("%Y-%m"))
    lines = [line for line in result.stdout.splitlines() if line.startswith("  ")]
    costs = [Decimal(line.split()[1].lstrip("$").replace(",", "")) for line in lines if line.split()[1].startswith("$")]
    assert costs == sorted(costs) and len(costs) > 3
    assert "gpt-test-candidate" in result.stdout and "not priced" in result.stdout


def test_compare_rejects_bad_arguments(built):
    db, _, _, _ = built
    for args, message in (
        (("not-a-uuid",), "PROJECT_ID must be a uuid"),
        ((str(NEW_PROJECT), "--month", "2026-13"), "--month must be YYYY-MM"),
    ):
        result = db.cli("compare", *args, check=False)
        assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr


@pytest.mark.parametrize("as_of_offset", [0, 1, 7, 14, 21])
def test_forecast_month_to_date_equals_the_marts_and_brackets_the_forecast(built, as_of_offset):
    """Forecasts made as_of_offset days into the last complete month (0: on its first day)."""
    db, _, _, first = built
    as_of = first + dt.timedelta(days=as_of_offset) - dt.timedelta(days=1)
    db.dbt("run", "--select", "project_cost_forecast", "--vars", f"{{forecast_as_of: '{as_of}'}}")
    month = (as_of + dt.timedelta(days=1)).replace(day=1)
    daily = db.query(
        "select project_id, coalesce(sum(total_cost_usd), 0) as cost, coalesce(sum(total_savings_usd), 0) as savings"
        " from analytics.usage_aggregations_daily where date >= %s and date <= %s group by project_id",
        (month, as_of),
    )
    month_to_date = {r["project_id"]: r for r in daily}
    forecasts = db.query("select * from analytics.project_cost_forecast")
    assert forecasts
    for f in forecasts:
        assert f["month"] == month and f["as_of_date"] == as_of and f["days_elapsed"] == as_of_offset
        mtd = month_to_date.get(f["project_id"], {"cost": 0, "savings": 0})
        assert f["month_to_date_cost_usd"] == mtd["cost"] and f["month_to_date_savings_usd"] == mtd["savings"]
        assert f["month_to_date_cost_usd"] <= f["forecast_low_usd"] <= f["forecast_cost_usd"] <= f["forecast_high_usd"]
        assert f["forecast_savings_usd"] >= f["month_to_date_savings_usd"]


def test_a_project_with_one_day_of_history_gets_the_run_rate(built):
    db, _, _, _ = built
    yesterday = db.now().astimezone(dt.UTC).date() - dt.timedelta(days=1)
    db.dbt("run", "--select", "project_cost_forecast", "--vars", f"{{forecast_as_of: '{yesterday}'}}")
    row = db.query("select * from analytics.project_cost_forecast where project_id = %s", (NEW_PROJECT,))[0]
    assert row["method"] == "run_rate"
    days_left = row["days_in_month"] - row["days_elapsed"]
    assert row["forecast_cost_usd"] == row["month_to_date_cost_usd"] + Decimal("1.0") * days_left
    first_raw = min(utc(r["created_at"]) for r in raw_rows(db) if r["project_id"] == NEW_PROJECT)
    assert first_raw.date() == yesterday


def test_the_dagster_check_compares_the_forecast_month_to_date_with_the_daily_mart(built, monkeypatch):
    db, _, _, _ = built
    for name, value in db.env.items():
        monkeypatch.setenv(name, value)
    from orchestration.defs.checks import forecast_month_to_date_matches_daily

    db.dbt("run", "--select", "project_cost_forecast")
    assert forecast_month_to_date_matches_daily().passed
    with db.connect() as conn:
        conn.execute(
            "update analytics.project_cost_forecast set month_to_date_cost_usd = month_to_date_cost_usd + 0.01,"
            " forecast_cost_usd = forecast_cost_usd + 0.01 where project_id = %s",
            (NEW_PROJECT,),
        )
    result = forecast_month_to_date_matches_daily()
    assert not result.passed and result.metadata["projects_differing"].value == 1


# --- the forecast method, against an independent computation on hand-made daily histories ---

FORECAST_AS_OF = dt.date(2026, 11, 18)  # forecasts November 19-30 from the 28 days up to here


def reference_forecast(history: dict[dt.date, Decimal | None], as_of: dt.date, history_days: int = 28) -> dict:
    """docs/contract.md, section 11, in plain Python: the cost forecast of one project."""
    month = (as_of + dt.timedelta(days=1)).replace(day=1)
    next_month = (month + dt.timedelta(days=32)).replace(day=1)
    first_day = min(d for d in history if d > as_of - dt.timedelta(days=history_days + 31))
    days = [as_of - dt.timedelta(days=back) for back in range(history_days)]
    known = [(history_days - 1 - back, d, float(history.get(d) or 0)) for back, d in enumerate(days) if d >= first_day]
    n_known = len(known)
    mean = sum(v for *_, v in known) / n_known
    factors = {}
    for weekday in {d.weekday() for _, d, _ in known}:
        values = [v for _, d, v in known if d.weekday() == weekday]
        factors[weekday] = sum(values) / len(values) / mean if n_known >= 14 and mean > 0 else 1.0
    levels = [(x, v / factors[d.weekday()]) for x, d, v in known if factors[d.weekday()] > 0]
    n = len(levels)
    sx, sy = sum(x for x, _ in levels), sum(y for _, y in levels)
    sxx, sxy = sum(x * x for x, _ in levels), sum(x * y for x, y in levels)
    slope = (n * sxy - sx * sy) / (n * sxx - sx * sx) if n_known >= 7 and n * sxx - sx * sx > 0 else 0.0
    residual_squares = sum((y - ((sy - slope * sx) / n + slope * x)) ** 2 for x, y in levels)
    significant = n > 2 and slope * slope * (sxx - sx * sx / n) * (n - 2) > 4 * residual_squares
    slope = slope if significant else 0.0
    intercept = (sy - slope * sx) / n if n else 0.0

    def day_forecast(x: int, factor: float) -> float:
        return max(0.0, intercept + slope * x) * factor

    remaining = [
        day_forecast(history_days - 1 + ahead, factors.get((as_of + dt.timedelta(days=ahead)).weekday(), 1.0))
        for ahead in range(1, 32)
        if as_of + dt.timedelta(days=ahead) < next_month
    ]
    sigma = (sum((v - day_forecast(x, factors[d.weekday()])) ** 2 for x, d, v in known) / max(n_known - 2, 1)) ** 0.5
    to_date = sum((c or 0) for d, c in history.items() if month <= d <= as_of)
    forecast = float(to_date) + sum(remaining)
    half_width = 1.2816 * sigma * len(remaining) ** 0.5
    return {
        "month_to_date": to_date,
        "forecast": forecast,
        "low": max(float(to_date), forecast - half_width),
        "high": forecast + half_width,
        "method": "weekday_trend" if n_known >= 14 else "linear_trend" if n_known >= 7 else "run_rate",
        "trend_kept": significant,
    }


def forecast_histories() -> dict[str, dict[dt.date, Decimal | None]]:
    import random

    rng = random.Random(7)
    days = [FORECAST_AS_OF - dt.timedelta(days=back) for back in range(40)][::-1]

    def history(cost, since=days[0]) -> dict[dt.date, Decimal | None]:
        return {d: cost(n, d) for n, d in enumerate(days) if d >= since}

    def money(value: float) -> Decimal:
        return Decimal(str(round(value, 6)))

    weekly = {5: 0.5, 6: 0.4}
    return {
        "trending": history(lambda n, d: money(20 * 1.03**n * weekly.get(d.weekday(), 1) * rng.uniform(0.9, 1.1))),
        "flat": history(lambda n, d: money(50 * weekly.get(d.weekday(), 1) * rng.uniform(0.85, 1.15))),
        "falling to nothing": history(lambda n, d: money(max(0.0, 80 - 2.5 * n))),
        "closed on weekends": history(lambda n, d: money(0 if d.weekday() >= 5 else 10 + n)),
        "unpriced days": history(lambda n, d: None if n % 9 == 0 else money(5 + 0.1 * n)),
        "ten days": history(lambda n, d: money(3 + n), since=FORECAST_AS_OF - dt.timedelta(days=9)),
        "three days": history(lambda n, d: money(7), since=FORECAST_AS_OF - dt.timedelta(days=2)),
    }


def test_the_forecast_method_equals_an_independent_computation(make_db):
    """Weekday factors, a trend kept only when significant, the clamp at 0, short histories, and
    unpriced (NULL-cost) days, on daily totals made by hand."""
    db = make_db("wl_test_forecast_method")
    histories = forecast_histories()
    ids = {name: uuid.uuid5(uuid.NAMESPACE_OID, name) for name in histories}
    with db.connect() as conn:
        conn.execute("create schema analytics")
        conn.execute(
            "create table analytics.usage_aggregations_daily"
            " (project_id uuid, date date, total_cost_usd numeric, total_savings_usd numeric,"
            " prompt_cache_savings_usd numeric)"
        )
        with conn.cursor() as cur:
            cur.executemany(
                "insert into analytics.usage_aggregations_daily values (%s, %s, %s, %s, 0)",
                [(ids[name], d, c, 0) for name, h in histories.items() for d, c in h.items()],
            )
    db.dbt("run", "--select", "project_cost_forecast", "--vars", f"{{forecast_as_of: '{FORECAST_AS_OF}'}}")
    rows = {r["project_id"]: r for r in db.query("select * from analytics.project_cost_forecast")}
    assert set(rows) == set(ids.values())
    expected = {name: reference_forecast(h, FORECAST_AS_OF) for name, h in histories.items()}
    # the histories exercise both branches of the significance test
    assert expected["trending"]["trend_kept"] and expected["falling to nothing"]["trend_kept"]
    assert not expected["flat"]["trend_kept"]
    for name, want in expected.items():
        got = rows[ids[name]]
        assert got["method"] == want["method"], name
        assert got["month_to_date_cost_usd"] == want["month_to_date"], name
        pairs = (("forecast_cost_usd", "forecast"), ("forecast_low_usd", "low"), ("forecast_high_usd", "high"))
        for column, key in pairs:
            assert float(got[column]) == pytest.approx(want[key], abs=2e-6), (name, column)
