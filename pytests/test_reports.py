"""The savings report: figures against an independent computation from the generated rows, the week
before (also an empty one), one model and fifty, a local reporting zone, the page in headless
Chromium, the email through a real local SMTP server, and the weekly Dagster asset."""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import random
import re
import shutil
import uuid
import zoneinfo
from decimal import Decimal

import psycopg.rows
import pytest
from conftest import insert_rows, request
from local_servers import Smtp
from test_docs_site import chromium

UTC = dt.UTC
ONE, FIFTY, NEW = uuid.UUID(int=101), uuid.UUID(int=102), uuid.UUID(int=103)
KOLKATA = "Asia/Kolkata"
PROVIDERS = ("openai", "anthropic", "google", "mistral", "groq")


def _weeks() -> tuple[dt.date, dt.date]:
    today = dt.datetime.now(UTC).date()
    monday = today - dt.timedelta(days=today.weekday()) - dt.timedelta(days=7)  # the last complete ISO week
    return monday, monday - dt.timedelta(days=7)


def _rows() -> list[dict]:
    rnd = random.Random(11)
    week, before = _weeks()
    # on a Monday the day after the week is today: its rows stay in the past, or a row logged "later
    # today" would be rejected as future at build time and counted once the clock passes it
    now = dt.datetime.now(UTC) - dt.timedelta(minutes=1)
    rows = []

    def add(project, day, provider, model, count):
        for _ in range(count):
            at = dt.datetime.combine(day, dt.time(), UTC) + dt.timedelta(seconds=rnd.randrange(86400))
            if at > now:
                continue
            cost = Decimal(rnd.randrange(100, 90000)) / 1_000_000
            cached = rnd.random() < 0.3
            rows.append(
                request(
                    project,
                    at,
                    provider=provider,
                    model=model,
                    cached=cached,
                    cost_usd=Decimal(0) if cached else cost,
                    potential_cost_usd=cost,
                    latency_ms=rnd.choice([None, rnd.randint(5, 4000)]),
                )
            )

    for offset in range(-1, 15):  # both weeks, and a day either side (local days of Kolkata reach into them)
        day = before + dt.timedelta(days=offset)
        add(ONE, day, "openai", "gpt-4o-mini", 24)
        for m in range(50):
            add(FIFTY, day, PROVIDERS[m % 5], f"model-{m:02d}", 2)
        if day >= week:
            add(NEW, day, "anthropic", "claude-sonnet-4-20250514", 10)
    return rows


@pytest.fixture(scope="module")
def db(make_db):
    db = make_db("wl_test_reports")
    db.cli("generate", "--rows", "0", "--allow-external")
    db.rows = _rows()
    insert_rows(db, db.rows)
    db.build_models()
    with db.connect() as conn:
        conn.execute(
            "insert into analytics.project_settings (project_id, report_email_to) values (%s, %s)",
            (ONE, "one@example.com"),
        )
        conn.execute("insert into analytics.project_settings (project_id, time_zone) values (%s, %s)", (FIFTY, KOLKATA))
    from orchestration.core import bookkeeping

    with db.connect() as conn, conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
        bookkeeping.ensure(cur, bookkeeping.ALERT_TABLES)
        week, _ = _weeks()
        cur.execute(
            "insert into analytics.alert_events (project_id, rule, window_start, window_end, observed, threshold,"
            " message, fired_at) values (%s, 'daily_cost_spike', %s, %s, 5, 3, %s, %s)",
            (
                ONE,
                week,
                week + dt.timedelta(days=1),
                f"project {ONE}: spent $5.00",
                dt.datetime.combine(week + dt.timedelta(days=2), dt.time(9), UTC),
            ),
        )
    return db


def expected(db, project, first: dt.date, last: dt.date, zone: str = "UTC") -> dict:
    """Totals over local days [first, last] straight from the generated rows."""
    tz = zoneinfo.ZoneInfo(zone)
    rows = [r for r in db.rows if r["project_id"] == project and first <= r["created_at"].astimezone(tz).date() <= last]
    requests = len(rows)
    cached = sum(r["cached"] for r in rows)
    cost = sum((r["cost_usd"] for r in rows), Decimal(0))
    potential = sum((r["potential_cost_usd"] for r in rows), Decimal(0))
    return {
        "requests": Decimal(requests),
        "hit_rate": Decimal(100) * cached / requests if requests else None,
        "cost": cost,
        "potential": potential,
        "savings": potential - cost,
    }


SUMMARY = re.compile(
    r'<tr data-figure="(\w+)">.*?class="this" data-value="([^"]*)".*?class="previous" data-value="([^"]*)"'
    r'.*?class="change">([^<]*)<'
)


def summary(page: str) -> dict[str, tuple]:
    return {
        key: (Decimal(this) if this else None, Decimal(before) if before else None, html.unescape(change))
        for key, this, before, change in SUMMARY.findall(page)
    }


def report(db, tmp_path, project, *args) -> str:
    out = tmp_path / f"{project}-{'-'.join(args) or 'default'}"
    db.cli("report", str(project), "--out", str(out), *args)
    return (out / "report.html").read_text()


def _close(a: Decimal | None, b: Decimal | None) -> bool:
    return a == b if a is None or b is None else abs(a - b) < Decimal("1e-20")


def test_every_figure_of_the_week_and_the_week_before_equals_the_raw_rows(db, tmp_path):
    week, before = _weeks()
    label = f"{week.isocalendar()[0]}-W{week.isocalendar()[1]:02d}"
    page = report(db, tmp_path, ONE)  # default: the last complete ISO week
    assert f"Savings report {label}" in page
    figures = summary(page)
    this, previous = (
        expected(db, ONE, week, week + dt.timedelta(days=6)),
        expected(db, ONE, before, week - dt.timedelta(days=1)),
    )
    for key in ("requests", "hit_rate", "cost", "potential", "savings"):
        assert _close(figures[key][0], this[key]) and _close(figures[key][1], previous[key]), (key, figures[key])
    change = Decimal(100) * (this["cost"] - previous["cost"]) / previous["cost"]
    assert figures["cost"][2] == f"{change:+.1f}%"
    assert f"${this['cost']:,.2f}" in page and f"${this['savings']:,.2f}" in page  # shown to the cent
    # per day: equal to the daily mart (UTC reporting zone)
    daily = {
        r["date"]: r
        for r in db.query(
            "select date, total_requests, total_cost_usd from analytics.usage_aggregations_daily where project_id = %s",
            (ONE,),
        )
    }
    days = re.findall(
        r'<tr data-date="([\d-]+)">.*?data-column="total_requests" data-value="(\d+)".*?'
        r'data-column="total_cost_usd" data-value="([^"]*)"',
        page,
    )
    assert len(days) == 7
    for day, requests, cost in days:
        row = daily[dt.date.fromisoformat(day)]
        assert int(requests) == row["total_requests"] and Decimal(cost) == row["total_cost_usd"]
    # one model; the week's alert of this project only
    assert re.findall(r'<tr data-model="([^"]+)">', page) == ["openai/gpt-4o-mini"]
    assert "spent $5.00" in page
    assert "spent $5.00" not in report(db, tmp_path, NEW, "--week", label)


def test_fifty_models_in_a_local_time_zone_and_a_week_with_no_traffic_before(db, tmp_path):
    week, before = _weeks()
    label = f"{week.isocalendar()[0]}-W{week.isocalendar()[1]:02d}"
    page = report(db, tmp_path, FIFTY, "--week", label)
    assert f'<span id="time-zone">{KOLKATA}</span>' in page
    figures = summary(page)
    this = expected(db, FIFTY, week, week + dt.timedelta(days=6), KOLKATA)
    assert all(_close(figures[k][0], this[k]) for k in this), figures
    models = dict(re.findall(r'<tr data-model="([^"]+)">.*?data-column="requests" data-value="(\d+)"', page))
    assert len(models) == 50
    utc_week = [
        r for r in db.rows if r["project_id"] == FIFTY and week <= r["created_at"].date() <= week + dt.timedelta(days=6)
    ]
    assert sum(int(n) for n in models.values()) == len(utc_week)  # the model split is by UTC day

    fresh = summary(report(db, tmp_path, NEW, "--week", label))
    assert fresh["requests"][1] == 0 and fresh["cost"][2] == "n/a (no traffic before)"
    assert fresh["hit_rate"][1] is None and fresh["hit_rate"][2] == "n/a (no traffic before)"
    empty = summary(report(db, tmp_path, NEW, "--week", f"{before.isocalendar()[0]}-W{before.isocalendar()[1]:02d}"))
    assert empty["requests"][0] == 0 and empty["cost"][0] == 0 and empty["requests"][2] == "n/a"

    snapshot = summary(report(db, tmp_path, ONE, "--days", "30"))
    today = dt.datetime.now(UTC).date()
    assert snapshot["requests"][0] == expected(db, ONE, today - dt.timedelta(days=29), today)["requests"]


def test_bad_arguments_get_one_line_errors(db):
    for args, message in (
        (["--week", "2026-47"], "--week must be an ISO week like 2026-W47"),
        (["--week", "2026-W54"], "does not exist"),
        (["--week", "2026-W40", "--days", "7"], "either --week or --days"),
        (["--time-zone", "Mars/Olympus"], "not an IANA name"),
    ):
        result = db.cli("report", str(ONE), *args, check=False)
        assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1


LOAD_PROBE = """<script>window.addEventListener('load', () => {
  document.body.setAttribute('data-viewport', window.innerWidth);
  document.body.setAttribute('data-images', JSON.stringify([...document.images].map(
    i => [i.naturalWidth, i.naturalHeight, i.clientWidth, i.clientHeight])));
});
</script></body>"""


def test_the_page_renders_its_charts_in_headless_chromium_on_a_desktop_and_a_phone(db, tmp_path):
    from PIL import Image

    page = report(db, tmp_path, FIFTY, "--days", "14")
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", LOAD_PROBE))
    for width, expect_width in ((1000, 800), (390, None)):
        dom = chromium("--virtual-time-budget=5000", f"--window-size={width},2000", "--dump-dom", probe.as_uri()).stdout
        images = json.loads(html.unescape(re.search(r'data-images="([^"]*)"', dom)[1]))
        viewport = int(re.search(r'data-viewport="(\d+)"', dom)[1])  # headless Chromium's narrowest is ~500
        assert len(images) == 5
        for natural_w, natural_h, shown_w, shown_h in images:
            assert (natural_w, natural_h) == (800, 320)  # every data URI decodes to the whole chart
            if expect_width:
                assert (shown_w, shown_h) == (800, 320)
            else:  # scaled down to the phone's width, keeping the aspect ratio
                assert viewport < 800 and shown_w <= viewport - 20 and abs(shown_h - shown_w * 320 / 800) <= 1
    shot = tmp_path / "report.png"
    chromium(
        "--window-size=1000,2400", f"--screenshot={shot}", (tmp_path / f"{FIFTY}---days-14" / "report.html").as_uri()
    )
    image = Image.open(shot).convert("L")
    low, high = image.getextrema()
    assert high - low > 100 and len(set(image.resize((100, 240)).getdata())) > 30, "the report rendered blank"


def test_the_email_arrives_with_inline_charts_that_resolve(db, tmp_path):
    from PIL import Image

    smtp = Smtp()
    try:
        result = db.cli(
            "report",
            str(ONE),
            "--out",
            str(tmp_path / "mail"),
            "--email",
            "reader@example.com",
            extra_env={"WATCHLLM_SMTP_URL": smtp.url},
        )
        assert "sent to reader@example.com" in result.stdout
        [(recipients, message)] = smtp.messages
    finally:
        smtp.close()
    assert recipients == ["reader@example.com"] and str(ONE) in message["Subject"]
    week, _ = _weeks()
    this = expected(db, ONE, week, week + dt.timedelta(days=6))
    assert f"${this['cost']:,.2f} spent" in message["Subject"]
    body = message.get_body(("html",)).get_content()
    assert "data:image" not in body
    cids = re.findall(r'src="cid:([^"]+)"', body)
    images = {part["Content-ID"].strip("<>"): part for part in message.walk() if part.get_content_maintype() == "image"}
    assert len(cids) == 5 and set(cids) == set(images)
    for part in images.values():
        assert Image.open(io.BytesIO(part.get_content())).size == (800, 320)
    assert f"${this['savings']:,.2f}" in message.get_body(("plain",)).get_content()


def test_the_weekly_dagster_asset_renders_every_active_project_and_mails_those_with_a_recipient(
    db, tmp_path, monkeypatch
):
    import dagster as dg

    from orchestration.defs.notifications import weekly_savings_reports

    smtp = Smtp()
    try:
        for name, value in {**db.env, "WATCHLLM_REPORTS_DIR": str(tmp_path), "WATCHLLM_SMTP_URL": smtp.url}.items():
            monkeypatch.setenv(name, value)
        week, _ = _weeks()
        result = dg.materialize([weekly_savings_reports], partition_key=week.isoformat())
        assert result.success
        [materialization] = result.asset_materializations_for_node("weekly_savings_reports")
        metadata = materialization.metadata
        assert metadata["projects_rendered"].value == 3 and metadata["emails_sent"].value == 1
        assert "data:image/png;base64," in metadata["preview"].value
        label = metadata["week"].value
        assert sorted(p.name for p in (tmp_path / "weekly" / label).iterdir()) == sorted(
            str(p) for p in (ONE, FIFTY, NEW)
        )
        [(recipients, message)] = smtp.messages
        assert recipients == ["one@example.com"] and str(ONE) in message["Subject"]
    finally:
        smtp.close()
    shutil.rmtree(tmp_path / "weekly", ignore_errors=True)


def test_the_weekly_schedule_runs_on_mondays_at_six_utc_for_the_week_that_ended():
    import dagster as dg

    from orchestration.definitions import defs

    schedule = defs.resolve_schedule_def("weekly_reports_schedule")
    assert schedule.cron_schedule == "0 6 * * 1" and schedule.execution_timezone == "UTC"
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 11, 30, 6, tzinfo=UTC))
    [run_request] = schedule.evaluate_tick(context).run_requests
    assert run_request.partition_key == "2026-11-23"  # the ISO week 2026-W48, Monday to Sunday


def test_unknown_money_stays_unknown_in_the_totals():
    from orchestration.core.reports import Totals

    def day(cost):
        return {
            "total_requests": 2,
            "cached_requests": 1,
            "total_cost_usd": cost,
            "total_potential_cost_usd": cost,
            "total_savings_usd": cost,
        }

    assert Totals.of([day(None), day(Decimal("1.25"))]).cost == Decimal("1.25")  # the known days' sum
    assert Totals.of([day(None), day(None)]).cost is None  # only unpriced traffic: unknown, not $0
    assert Totals.of([]).cost == 0  # no traffic: $0
