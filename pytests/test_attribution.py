"""Who spent it (docs/contract.md, section 15): keys, end users, tags and errors, against the reference.

One build over generated traffic with 3 keys per project, 500 end users, 0 to 3 tags per request
(some repeated, blank or padded), 5% errors and hostile labels, up to now, so the breakdown's open
tail is read from the requests. The database is Supabase-like, so the RPC is also called as the
`authenticated` role.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from decimal import Decimal

import psycopg
import pytest
from conftest import ATTRIBUTION_COLUMNS, SEED, assert_row_matches, assert_tables_equal, raw_rows, table, utc
from reference import NO_LABEL, compute, load_prices, request_tags
from test_security import SUPABASE_LIKE, as_role

USER = uuid.UUID(int=0xA77)
OUTSIDER = uuid.UUID(int=0xB77)
DIMENSIONS = ("api_key", "end_user", "tag")


@pytest.fixture(scope="module")
def attributed(make_db):
    db = make_db("wl_test_attribution")
    db.cli(
        "generate", "--rows", "24000", "--days", "4", "--projects", "4", "--seed", "43", "--messy",
        "--attribution", "--keys", "3", "--end-users", "500", "--tags", "12", "--error-rate", "0.05",
        "--allow-external",
    )  # fmt: skip
    with db.connect() as conn:
        conn.execute(SUPABASE_LIKE)
        conn.execute(
            "insert into public.projects select distinct project_id, %s from public.usage_logs"
            " where project_id is not null",
            (USER,),
        )
    db.dbt("build")
    raw = raw_rows(db, ATTRIBUTION_COLUMNS)
    reference = compute(raw, load_prices(SEED), db.now())
    busiest = db.query(
        "select project_id from analytics.usage_aggregations_daily group by 1 order by sum(total_requests) desc limit 1"
    )[0]["project_id"]
    return db, reference, raw, busiest


def test_usage_by_dimension_daily_equals_the_reference_row_by_row(attributed):
    db, reference, _, _ = attributed
    expected = reference.by_dimension_daily
    assert {key[2] for key in expected} == set(DIMENSIONS)
    assert len(expected) > 1000
    assert_tables_equal(
        table(db, "usage_by_dimension_daily", ("project_id", "date", "dimension", "value")),
        expected,
        "usage_by_dimension_daily",
    )


def test_key_and_user_rows_add_up_to_the_day_and_tags_count_once_each(attributed):
    db, reference, raw, _ = attributed
    daily = db.query(
        "select d.project_id, d.date, d.dimension, sum(d.total_requests) as requests,"
        " sum(d.total_cost_usd) as cost, sum(d.error_requests) as errors"
        " from analytics.usage_by_dimension_daily as d group by 1, 2, 3"
    )
    totals = {
        (r["project_id"], r["date"]): r
        for r in db.query("select project_id, date, total_requests, total_cost_usd, error_requests"
                          " from analytics.usage_aggregations_daily")
    }  # fmt: skip
    kept = {r["id"] for r in raw} - set(reference.rejected)
    tag_counts = {}
    for row in raw:
        if row["id"] in kept:
            key = (row["project_id"], row["created_at"].astimezone(dt.UTC).date())
            tag_counts[key] = tag_counts.get(key, 0) + max(1, len(request_tags(row["tags"])))
    for row in daily:
        day = totals[(row["project_id"], row["date"])]
        if row["dimension"] == "tag":
            assert row["requests"] == tag_counts[(row["project_id"], row["date"])]
            assert row["requests"] > day["total_requests"]  # several tags per request: never a total
        else:
            assert (row["requests"], row["cost"], row["errors"]) == (
                day["total_requests"], day["total_cost_usd"], day["error_requests"],
            )  # fmt: skip
    repeated = [r for r in raw if r["tags"] and len(set(t.strip() for t in r["tags"] if t.strip())) < len(r["tags"])]
    assert repeated, "the generator repeats a tag on some requests"
    nones = db.query("select distinct dimension from analytics.usage_by_dimension_daily where value = %s", (NO_LABEL,))
    assert {r["dimension"] for r in nones} == set(DIMENSIONS)


def test_errors_are_counted_in_every_table_and_on_the_dashboard(attributed):
    db, reference, _, busiest = attributed
    assert_tables_equal(
        table(db, "usage_aggregations_daily", ("project_id", "date")), reference.daily, "usage_aggregations_daily"
    )
    assert_tables_equal(
        table(db, "usage_by_model_daily", ("project_id", "date", "provider", "model")),
        reference.by_model_daily,
        "usage_by_model_daily",
    )
    errors = sum(row["error_requests"] for row in reference.daily.values())
    requests = sum(row["total_requests"] for row in reference.daily.values())
    assert 0.04 < errors / requests < 0.06
    today = db.now().astimezone(dt.UTC).date()
    dashboard = db.query("select date, error_requests, error_rate from public.get_dashboard_stats(%s, 7)", (busiest,))
    for row in dashboard:
        expected = reference.daily.get((busiest, row["date"]))
        assert row["error_requests"] == (expected["error_requests"] if expected else 0), row["date"]
        assert row["error_rate"] == (expected["error_rate"] if expected else None), row["date"]
    assert dashboard[-1]["date"] == today


def test_hostile_labels_are_quarantined_with_their_reasons(attributed):
    db, reference, _, _ = attributed
    actual = {r["id"]: r["reason"] for r in db.query("select id, reason from analytics.usage_logs_rejected")}
    assert actual == reference.rejected
    reasons = {part for reason in actual.values() for part in reason.split("; ")}
    assert {"api_key_id is longer than 256 characters", "a tag is longer than 256 characters"} <= reasons
    # a label with markup and a line break is kept, as logged (it is escaped where a person reads it)
    assert (
        db.query(
            "select count(*) as n from analytics.usage_by_dimension_daily where value = %s", ("<!channel> user\nline",)
        )[0]["n"]
        > 0
    )


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kathmandu"])
@pytest.mark.parametrize(("dimension", "limit"), [("api_key", 2), ("end_user", 10), ("tag", 5)])
def test_the_breakdown_equals_the_reference_in_local_days(attributed, zone, dimension, limit):
    db, reference, _, busiest = attributed
    actual = db.query("select * from public.get_usage_breakdown(%s, %s, 3, %s, %s)", (busiest, dimension, zone, limit))
    expected = reference.breakdown(busiest, dimension, 3, zone, db.now(), limit)
    assert [r["value"] for r in actual] == [r["value"] for r in expected]
    for got, want in zip(actual, expected, strict=True):
        assert_row_matches(got, want, f"{dimension} {zone} {want['value']}")
    if dimension == "tag":
        assert "(other)" not in {r["value"] for r in actual}
    else:
        assert actual[-1]["value"] == "(other)"
        dashboard = db.query(
            "select sum(total_requests) as requests, sum(total_cost_usd) as cost, sum(error_requests) as errors"
            " from public.get_dashboard_stats(%s, 3, %s)",
            (busiest, zone),
        )[0]
        assert (
            sum(r["total_requests"] for r in actual),
            sum(r["total_cost_usd"] for r in actual),
            sum(r["error_requests"] for r in actual),
        ) == (dashboard["requests"], dashboard["cost"], dashboard["errors"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("nope", 7, "UTC", 20), "p_dimension must be 'api_key', 'end_user' or 'tag', got 'nope'"),
        (("tag", 0, "UTC", 20), "p_days must be between 1 and 366, got 0"),
        (("tag", 7, "UTC", 0), "p_limit must be between 1 and 1000, got 0"),
        (("tag", 7, "Mars/Olympus", 20), "is not a time zone Postgres knows"),
        (("tag", 7, "+05:30", 20), "is not a time zone name"),
    ],
)
def test_a_bad_argument_gets_a_one_line_error(attributed, arguments, message):
    db, _, _, busiest = attributed
    with db.connect() as conn, pytest.raises(psycopg.errors.DataError) as raised:
        conn.execute("select * from public.get_usage_breakdown(%s, %s, %s, %s, %s)", (busiest, *arguments))
    assert message in str(raised.value).splitlines()[0]


def test_the_breakdown_as_authenticated_is_the_owners_for_a_member_and_empty_for_anyone_else(attributed):
    db, _, _, busiest = attributed
    query = "select * from public.get_usage_breakdown(%s, 'end_user', 7, 'Asia/Kathmandu', 5)"
    owner = db.query(query, (busiest,))
    with as_role(db, "authenticated", USER) as conn:
        conn.row_factory = psycopg.rows.dict_row
        assert conn.execute(query, (busiest,)).fetchall() == owner
    with as_role(db, "authenticated", OUTSIDER) as conn:
        assert conn.execute(query, (busiest,)).fetchall() == []
        for name in ("int_usage_hourly_by_dimension", "usage_by_dimension_daily"):
            assert conn.execute(f"select count(*) from analytics.{name}").fetchone()[0] == 0


@pytest.mark.parametrize("grain", ["day", "model", "api_key", "tag"])
def test_export_round_trips_exact_decimals(attributed, grain, tmp_path):
    db, _, _, busiest = attributed
    today = db.now().astimezone(dt.UTC).date()
    start, end = today - dt.timedelta(days=3), today
    table_name = {"day": "usage_aggregations_daily", "model": "usage_by_model_daily"}.get(
        grain, "usage_by_dimension_daily"
    )
    where = "" if grain in ("day", "model") else f" and dimension = '{grain}'"
    stored = db.query(
        f"select * , total_cost_usd::text as cost_text, total_savings_usd::text as savings_text"
        f" from analytics.{table_name} where project_id = %s and date between %s and %s{where}",
        (busiest, start, end),
    )
    out = db.cli("export", str(busiest), "--start", str(start), "--end", str(end), "--grain", grain, "--out", "-")
    lines = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(lines) == len(stored) > 0
    key = {"day": ("date",), "model": ("date", "provider", "model")}.get(grain, ("date", "value"))
    stored_by_key = {tuple(str(utc(r[k])) for k in key): r for r in stored}
    header = out.stdout.splitlines()[0]
    if grain == "tag":
        assert "tag rows do not add up to the project's totals" in header
    for line in lines:
        values = [line[k] if k in line else line[next(h for h in line if h.startswith(grain))] for k in key]
        row = stored_by_key[tuple(values)]
        assert line["total_cost_usd"] == (row["cost_text"] or "")
        assert line["total_savings_usd"] == (row["savings_text"] or "")
        assert int(line["total_requests"]) == row["total_requests"]
        assert int(line["error_requests"]) == row["error_requests"]
    parquet = tmp_path / f"{grain}.parquet"
    db.cli("export", str(busiest), "--start", str(start), "--end", str(end), "--grain", grain,
           "--format", "parquet", "--out", str(parquet))  # fmt: skip
    import pyarrow.parquet as pq

    read = pq.read_table(parquet).to_pylist()
    assert [r["total_cost_usd"] for r in read] == [line["total_cost_usd"] or None for line in lines]
    assert sum(Decimal(r["total_cost_usd"]) for r in read if r["total_cost_usd"]) == sum(
        r["total_cost_usd"] for r in stored if r["total_cost_usd"] is not None
    )


def test_export_refuses_bad_arguments_in_one_line(attributed):
    db, _, _, busiest = attributed
    for args, message in (
        (("--start", "2026-13-01", "--end", "2026-12-01", "--grain", "day"), "--start '2026-13-01' is not a day"),
        (("--start", "2026-12-02", "--end", "2026-12-01", "--grain", "day"), "is before --start"),
    ):
        result = db.cli("export", str(busiest), *args, check=False)
        assert result.returncode != 0 and message in result.stderr.strip().splitlines()[-1], result.stderr


def _alerts(db, webhook, as_of=None) -> dict:
    import json

    args = ["alerts", "check", "--json", *(["--as-of", as_of, "--record"] if as_of else [])]
    extra = {"WATCHLLM_ALERT_WEBHOOK_URL": webhook.url, "WATCHLLM_ALERT_RETRY_BASE_MINUTES": "0"}
    return json.loads(db.cli(*args, extra_env=extra).stdout)


def test_a_key_budget_alerts_once_at_80_and_once_at_100_percent(attributed):
    from local_servers import Webhook

    db, reference, _, busiest = attributed
    now = db.now().astimezone(dt.UTC)
    month = now.date().replace(day=1)
    spent = {}
    for r in reference.requests:
        if r.project_id == busiest and month <= r.day <= now.date() and r.cost is not None:
            key = r.labels["api_key"][0]
            spent[key] = spent.get(key, Decimal(0)) + r.cost
    key, month_to_date = max(spent.items(), key=lambda item: item[1])
    webhook = Webhook()
    try:
        with db.connect() as conn:
            conn.execute("drop table if exists analytics.alert_delivery_attempts, analytics.alert_events")
            conn.execute(
                "insert into analytics.key_budgets (project_id, api_key_id, monthly_budget_usd) values (%s, %s, %s)",
                (busiest, key, month_to_date / Decimal("0.9")),  # 90% spent: past 80%, not 100%
            )
        first = _alerts(db, webhook)
        fired = [e for e in first["fired"] if e["rule"] == "key_budget"]
        assert [(e["project_id"], e["subject"]) for e in fired] == [(str(busiest), f"{key} {month:%Y-%m} 80%")]
        body = next(b for b in webhook.accepted if b["rule"] == "key_budget")
        assert Decimal(body["observed"]) == month_to_date
        assert _alerts(db, webhook)["fired"] == []  # once per firing
        with db.connect() as conn:
            conn.execute("update analytics.key_budgets set monthly_budget_usd = %s", (month_to_date,))
        crossed = [e["subject"] for e in _alerts(db, webhook)["fired"] if e["rule"] == "key_budget"]
        assert crossed == [f"{key} {month:%Y-%m} 100%"]
        assert [b["subject"] for b in webhook.accepted if b["rule"] == "key_budget"] == [
            f"{key} {month:%Y-%m} 80%", f"{key} {month:%Y-%m} 100%",
        ]  # fmt: skip
    finally:
        webhook.close()
        with db.connect() as conn:
            conn.execute("delete from analytics.key_budgets")


def test_an_error_rate_spike_against_the_7_days_before_alerts_once(make_db):
    """Fixed days: 200 requests a day at 2% errors, then a day at 30%; the override project needs 50%."""
    from local_servers import Webhook

    db = make_db("wl_test_error_spike")
    db.cli("generate", "--rows", "0", "--attribution", "--allow-external")
    steady, spiking, overridden = (uuid.UUID(int=0xE0 + i) for i in range(3))
    rows = []
    for offset in range(9):
        day = dt.datetime(2026, 11, 1, tzinfo=dt.UTC) + dt.timedelta(days=offset)
        for project in (steady, spiking, overridden):
            share = 0.3 if offset == 8 and project != steady else 0.02
            for i in range(200):
                rows.append((uuid.uuid4(), project, day + dt.timedelta(minutes=7 * i), 500 if i < 200 * share else 200))
    with db.connect() as conn, conn.cursor() as cur:
        cur.executemany(
            "insert into public.usage_logs (id, project_id, created_at, provider, model, tokens_input,"
            " tokens_output, cost_usd, potential_cost_usd, cached, latency_ms, status_code)"
            " values (%s, %s, %s, 'openai', 'gpt-4o-mini', 100, 50, 0.001, 0.001, false, 300, %s)",
            rows,
        )
    db.build_models()
    with db.connect() as conn:
        conn.execute(
            "insert into analytics.project_settings (project_id, error_rate_spike_ratio) values (%s, 20)", (overridden,)
        )
    webhook = Webhook()
    try:
        outcome = _alerts(db, webhook, as_of="2026-11-10T06:00:00+00:00")
        fired = [e for e in outcome["fired"] if e["rule"] == "error_rate_spike"]
        assert [e["project_id"] for e in fired] == [str(spiking)]
        body = next(b for b in webhook.accepted if b["rule"] == "error_rate_spike")
        assert Decimal(body["observed"]) == Decimal("30.00")
        assert Decimal(body["threshold"]) == Decimal("7.00")  # max(2% x 2, 2% + 5 points)
        assert "30.00% of requests failed on 2026-11-09 (UTC)" in body["text"]
        again = _alerts(db, webhook, as_of="2026-11-10T06:00:00+00:00")
        assert again["fired"] == [] and len([b for b in webhook.accepted if b["rule"] == "error_rate_spike"]) == 1
    finally:
        webhook.close()


def test_the_weekly_report_shows_top_keys_and_end_users_that_add_up_to_the_week(attributed, tmp_path):
    import re

    db, reference, _, busiest = attributed
    today = db.now().astimezone(dt.UTC).date()
    year, week, _ = today.isocalendar()
    monday = today - dt.timedelta(days=today.weekday())
    db.cli("report", str(busiest), "--week", f"{year}-W{week:02d}", "--out", str(tmp_path))
    page = (tmp_path / "report.html").read_text()
    week_requests = [r for r in reference.requests if r.project_id == busiest and monday <= r.day <= today]
    for dimension in ("api_key", "end_user"):
        section = page.split(f'<table id="top-{dimension}">')[1].split("</table>")[0]
        rows = re.findall(
            r'data-value-label="([^"]*)".*?data-column="requests" data-value="(\d+)".*?'
            r'data-column="errors" data-value="(\d+)".*?data-column="cost" data-value="([^"]+)"',
            section,
        )
        assert rows and len(rows) <= 11
        assert sum(int(r[1]) for r in rows) == len(week_requests)
        assert sum(int(r[2]) for r in rows) == sum(r.is_error for r in week_requests)
        assert sum(Decimal(r[3]) for r in rows) == sum(
            (r.cost for r in week_requests if r.cost is not None), Decimal(0)
        )
        if dimension == "end_user":
            assert rows[-1][0] == "(other)"
    assert "<!channel>" not in page  # a hostile user label reaches the page only escaped
    assert 'data-figure="error_rate"' in page


def test_the_dagster_check_finds_key_rows_that_do_not_add_up(attributed, monkeypatch):
    from orchestration.defs.checks import keys_and_end_users_add_up_to_daily

    db, _, _, busiest = attributed
    for name, value in db.env.items():
        monkeypatch.setenv(name, value)
    assert keys_and_end_users_add_up_to_daily().passed
    with db.connect() as conn:
        conn.execute("begin")
        day = conn.execute(
            "select max(date) as d from analytics.usage_by_dimension_daily where project_id = %s", (busiest,)
        ).fetchone()["d"]
        conn.execute(
            "update analytics.usage_by_dimension_daily set total_requests = total_requests + 1"
            " where project_id = %s and date = %s and dimension = 'api_key' and value <> '(none)'"
            " and value = (select min(value) from analytics.usage_by_dimension_daily"
            "  where project_id = %s and date = %s and dimension = 'api_key' and value <> '(none)')",
            (busiest, day, busiest, day),
        )
        conn.execute("commit")
    try:
        result = keys_and_end_users_add_up_to_daily()
        assert not result.passed and result.metadata["days_differing"].value == 1
    finally:
        with db.connect() as conn:
            conn.execute(
                "update analytics.usage_by_dimension_daily set total_requests = total_requests - 1"
                " where project_id = %s and date = %s and dimension = 'api_key' and value = (select min(value)"
                " from analytics.usage_by_dimension_daily where project_id = %s and date = %s"
                " and dimension = 'api_key' and value <> '(none)')",
                (busiest, day, busiest, day),
            )


def test_the_scheduled_build_reads_only_its_window_of_the_dimension_tables(make_db):
    """Six days of traffic with many end users, then one new hour whose 40 requests come from 40
    users no one saw before: the scheduled build reads the raw rows of its window, the hourly
    dimension rows of the days it rebuilds and the daily rows of those days, each by an index
    range (sequential scans off, so the small tables are read as large ones would be), never the
    history; and the new hour's rows are exactly its distinct values."""
    from test_scheduled_window import tuples_read

    from orchestration import settings

    db = make_db("wl_test_attribution_window")
    traffic = ("--attribution", "--keys", "40", "--end-users", "5000")
    db.generate(rows=60_000, days=6, projects=12, seed=22, extra=traffic)
    db.dbt("build")
    project, now = uuid.UUID(int=0x5EED), db.now()
    with db.connect() as conn, conn.cursor() as cur:
        cur.executemany(
            "insert into public.usage_logs (id, project_id, created_at, provider, model, tokens_input, tokens_output,"
            " cost_usd, potential_cost_usd, cached, latency_ms, api_key_id, end_user, tags, status_code)"
            " values (%s, %s, %s, 'openai', 'gpt-4o-mini', 100, 50, 0.001, 0.001, false, 300, 'key-new', %s,"
            " array['fresh', 'fresh ', 'Fresh'], 200)",
            [(uuid.uuid4(), project, now - dt.timedelta(minutes=i + 1), f"newcomer-{i}") for i in range(40)],
        )
    window_start = now - dt.timedelta(hours=settings.lookback_hours() + 1)
    budgets = {}
    for name, column in (("int_usage_hourly_by_dimension", "hour_start"), ("usage_by_dimension_daily", "date")):
        days_from = dt.datetime.combine(window_start.astimezone(dt.UTC).date(), dt.time(), dt.UTC)
        bound = days_from if column == "hour_start" else days_from.date()
        window = db.query(f"select count(*) as n from analytics.{name} where {column} >= %s", (bound,))[0]["n"]
        everything = db.query(f"select count(*) as n from analytics.{name}")[0]["n"]
        assert 12 * (window + 100) < 3 * everything, (name, window, everything)
        budgets[name] = (window, everything, tuples_read(db, f"analytics.{name}"))
    raw_before = tuples_read(db, "public.usage_logs")
    db.cli("dbt", "build", "--exclude-resource-type", "unit_test",
           extra_env={"PGTZ": "UTC", "PGOPTIONS": "-c enable_seqscan=off"})  # fmt: skip
    raw_after = tuples_read(db, "public.usage_logs")
    assert raw_after["seq_scan"] == raw_before["seq_scan"]
    for name, (window, everything, before) in budgets.items():
        after = tuples_read(db, f"analytics.{name}")
        assert after["seq_scan"] == before["seq_scan"], name
        read = after["tuples"] - before["tuples"]
        assert read <= 12 * (window + 100), (name, read, window, everything)
    newest = db.query(
        "select dimension, count(distinct value) as n, sum(total_requests) as requests"
        " from analytics.int_usage_hourly_by_dimension"
        " where project_id = %s group by dimension order by dimension",
        (project,),
    )
    # one value per distinct label: one key, 40 users, and 'fresh' and 'Fresh' (case kept, padding trimmed)
    assert [(r["dimension"], r["n"], r["requests"]) for r in newest] == [
        ("api_key", 1, 40), ("end_user", 40, 40), ("tag", 2, 80),
    ]  # fmt: skip
