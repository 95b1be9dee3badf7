"""get_dashboard_stats(project, days, zone): exact local days in every zone, DST days included."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg
import pytest
from conftest import SEED, assert_dashboard_matches, insert_rows, raw_rows, request
from reference import compute, load_prices

ZONES = (
    "Asia/Kolkata",  # +05:30
    "Asia/Kathmandu",  # +05:45
    "Pacific/Chatham",  # +12:45 / +13:45
    "Australia/Lord_Howe",  # +10:30 / +11:00: a 30-minute daylight-saving shift
    "America/St_Johns",  # -03:30 with daylight saving
    "America/New_York",  # 23- and 25-hour days
    "Europe/Berlin",
    "UTC",
)
EDGE = uuid.UUID("7e2e0000-0000-0000-0000-00000000e2e1")
UNPRICED = uuid.UUID("7e2e0000-0000-0000-0000-00000000e2e2")
DAYS = 80  # back past every zone's autumn (or spring) transition of 2026
MICROSECOND = dt.timedelta(microseconds=1)


def local_midnights(zone: str, today: dt.date) -> list[dt.datetime]:
    """Every local midnight of the last DAYS days in `zone`, as UTC instants."""
    local = ZoneInfo(zone)
    days = [today - dt.timedelta(days=n) for n in range(DAYS + 1)]
    return [dt.datetime.combine(day, dt.time(), tzinfo=local).astimezone(dt.UTC) for day in days]


def transition_days(zone: str, today: dt.date) -> list[dt.date]:
    local = ZoneInfo(zone)
    days = [today - dt.timedelta(days=n) for n in range(DAYS)]
    return [
        d
        for d in days
        if dt.datetime.combine(d, dt.time(), tzinfo=local).utcoffset()
        != dt.datetime.combine(d + dt.timedelta(days=1), dt.time(), tzinfo=local).utcoffset()
    ]


@pytest.fixture(scope="module")
def built(make_db):
    db = make_db("wl_test_time_zones")
    db.generate(rows=15_000, days=DAYS, projects=6, seed=29)
    now = db.now()
    today = now.astimezone(dt.UTC).date()
    rows = []
    for zone in ZONES:
        for midnight in local_midnights(zone, today + dt.timedelta(days=1)):
            if midnight > now - dt.timedelta(minutes=1):
                continue
            # a request a microsecond before, at, and a microsecond after each local midnight
            for offset, latency in ((-MICROSECOND, 700), (dt.timedelta(0), 40), (MICROSECOND, 5000)):
                rows.append(request(EDGE, midnight + offset, latency_ms=latency, cost_usd=None))
    # A model without a price: a non-cached request without a recorded cost has no known cost, a
    # cached one costs its recorded cost or 0. Local days of these hours are NULL, 0 or priced
    # depending on which side of a local midnight each request falls.
    mystery = {"provider": "acme", "model": "mystery-1", "cost_usd": None, "potential_cost_usd": None}
    for days_ago, hour, overrides in (
        (10, 10, {}),
        (10, 20, {"cached": True}),
        (10, 21.5, {"cost_usd": Decimal("0.001")}),
        (7, 3, {}),
        (7, 23, {}),
        (4, 1, {"cached": True}),
        (4, 12, {}),
    ):
        at = dt.datetime.combine(today - dt.timedelta(days=days_ago), dt.time(), tzinfo=dt.UTC)
        rows.append(request(UNPRICED, at + dt.timedelta(hours=hour), **{**mystery, **overrides}))
    insert_rows(db, rows)
    db.dbt("build")
    # two projects report in their own zone: their closed local days are stored once the history is rebuilt
    with db.connect() as conn:
        conn.execute(
            "insert into analytics.project_settings (project_id, time_zone) values (%s, %s), (%s, %s)",
            (EDGE, "Asia/Kathmandu", UNPRICED, "America/New_York"),
        )
    db.cli("rebuild", "--start", str(today - dt.timedelta(days=DAYS + 1)), "--end", str(today + dt.timedelta(days=1)))
    # rows no build has aggregated yet, around the latest local midnights
    insert_rows(db, [request(EDGE, now - dt.timedelta(minutes=m), latency_ms=90 + m) for m in (2, 20, 45)])
    reference = compute(raw_rows(db), load_prices(SEED), db.now())
    return db, reference


@pytest.mark.parametrize("zone", ZONES)
def test_local_days_equal_the_reference_in_every_zone(built, zone):
    db, reference = built
    generated = sorted({p for p, _ in reference.daily if p not in (EDGE, UNPRICED)}, key=str)
    for project in [EDGE, UNPRICED, *generated[:2]]:
        actual = db.query("select * from public.get_dashboard_stats(%s, %s, %s)", (project, DAYS, zone))
        assert len(actual) == DAYS
        assert_dashboard_matches(actual, reference.local_dashboard(project, DAYS, zone, db.now()), f"{zone} {project}")


def test_the_test_data_covers_daylight_saving_days_and_offset_midnights():
    today = dt.datetime.now(dt.UTC).date()
    for zone in ("Pacific/Chatham", "Australia/Lord_Howe", "America/St_Johns", "America/New_York", "Europe/Berlin"):
        assert transition_days(zone, today), f"no daylight-saving day of {zone} in the last {DAYS} days"
    assert any(m.minute == 15 for m in local_midnights("Asia/Kathmandu", today))  # 00:00 +05:45 is 18:15 UTC
    assert any(m.minute == 30 for m in local_midnights("Asia/Kolkata", today))


def test_daylight_saving_days_have_23_or_25_hours_of_traffic(built):
    db, reference = built
    zone = "America/New_York"
    today = db.now().astimezone(dt.UTC).date()
    days = transition_days(zone, today)
    rows = db.query("select * from public.get_dashboard_stats(%s, %s, %s)", (EDGE, DAYS, zone))
    actual = {r["date"]: r for r in rows}
    expected = {r["date"]: r for r in reference.local_dashboard(EDGE, DAYS, zone, db.now())}
    local = ZoneInfo(zone)
    for day in days:
        start = dt.datetime.combine(day, dt.time(), tzinfo=local)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=local)
        assert (end.astimezone(dt.UTC) - start.astimezone(dt.UTC)).total_seconds() / 3600 in (23, 25)
        assert actual[day]["total_requests"] == expected[day]["total_requests"] > 0
        assert actual[day]["total_cost_usd"] == expected[day]["total_cost_usd"]


def test_the_two_argument_call_means_utc(built):
    db, _ = built
    two = db.query("select * from public.get_dashboard_stats(%s, 30)", (EDGE,))
    three = db.query("select * from public.get_dashboard_stats(%s, 30, 'UTC')", (EDGE,))
    assert two == three
    named = db.query("select * from public.get_dashboard_stats(p_project_id => %s, p_days => 30)", (EDGE,))
    assert named == two


@pytest.mark.parametrize(
    "zone, message",
    [
        (None, "p_time_zone is NULL"),
        ("Mars/Olympus_Mons", "is not a time zone Postgres knows"),
        ("+05:30", "is not a time zone name"),
        ("UTC'; drop table x; --", "is not a time zone name"),
    ],
)
def test_unknown_and_null_zones_get_clear_errors(built, zone, message):
    db, _ = built
    with pytest.raises(psycopg.Error) as error:
        db.query("select * from public.get_dashboard_stats(%s, 7, %s)", (EDGE, zone))
    assert message in str(error.value) and "p_time_zone" in str(error.value)


def test_a_split_hour_whose_requests_retention_deleted_is_refused(make_db):
    db = make_db("wl_test_time_zone_retention")
    project = uuid.uuid4()
    db.generate(rows=500, days=4, projects=2, seed=3)
    start = db.now() - dt.timedelta(days=3)
    insert_rows(db, [request(project, start + dt.timedelta(minutes=15 * i)) for i in range(4 * 72)])
    db.dbt("build")
    # at a whole hour, as the retention command deletes (at a UTC midnight)
    cutoff = (db.now() - dt.timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    with db.connect() as conn:
        conn.execute("delete from public.usage_logs where project_id = %s and created_at < %s", (project, cutoff))
    utc = db.query("select sum(total_requests) as n from public.get_dashboard_stats(%s, 4, 'UTC')", (project,))
    assert utc[0]["n"] == 4 * 72  # the aggregates outlive the raw rows
    whole_hours = db.query(
        "select sum(total_requests) as n from public.get_dashboard_stats(%s, 5, 'Europe/Berlin')", (project,)
    )
    assert whole_hours[0]["n"] == 4 * 72  # whole-hour offsets need no raw rows
    with pytest.raises(psycopg.Error) as error:
        db.query("select * from public.get_dashboard_stats(%s, 4, 'Asia/Kolkata')", (project,))
    assert "retention deleted" in str(error.value)
    recent = db.query("select * from public.get_dashboard_stats(%s, 1, 'Asia/Kolkata')", (project,))
    assert len(recent) == 1
    # the project sets its zone and the history is rebuilt: the days that cannot be split are not
    # stored (nothing replaces them with what is left), the later ones are
    with db.connect() as conn:
        conn.execute(
            "insert into analytics.project_settings (project_id, time_zone) values (%s, 'Asia/Kolkata')", (project,)
        )
    today = db.now().astimezone(dt.UTC).date()
    # (the model alone: the rebuild command's reconciliation tests rightly fail on this project's
    # raw rows deleted by hand)
    window = f"{{start: '{today - dt.timedelta(days=5)}', end: '{today + dt.timedelta(days=1)}'}}"
    db.dbt("run", "--select", "usage_aggregations_local_daily", "--vars", window)
    stored = {
        r["date"]
        for r in db.query("select date from analytics.usage_aggregations_local_daily where project_id = %s", (project,))
    }
    # the local day starting at the Kolkata midnight between the first request and the cutoff: its
    # split hour (18:00-19:00 UTC) had requests, all deleted
    kolkata = ZoneInfo("Asia/Kolkata")
    split_day = next(
        day
        for day in (start.astimezone(kolkata).date() + dt.timedelta(days=n) for n in range(3))
        if start <= dt.datetime.combine(day, dt.time(), tzinfo=kolkata) < cutoff
    )
    assert split_day not in stored, sorted(stored)
    assert db.now().astimezone(kolkata).date() - dt.timedelta(days=1) in stored
    with pytest.raises(psycopg.Error) as error:
        db.query("select * from public.get_dashboard_stats(%s, 4, 'Asia/Kolkata')", (project,))
    assert "retention deleted" in str(error.value)
    reference = compute(raw_rows(db), load_prices(SEED), db.now())
    assert_dashboard_matches(
        db.query("select * from public.get_dashboard_stats(%s, 2, 'Asia/Kolkata')", (project,)),
        reference.local_dashboard(project, 2, "Asia/Kolkata", db.now()),
        "stored after retention",
    )


def test_local_days_whose_hourly_aggregates_retention_deleted_are_refused(make_db):
    db = make_db("wl_test_time_zone_hourly_retention")
    project = uuid.uuid4()
    db.generate(rows=500, days=6, projects=2, seed=5)
    start = db.now() - dt.timedelta(days=5)
    insert_rows(db, [request(project, start + dt.timedelta(minutes=30 * i)) for i in range(2 * 24 * 5)])
    db.dbt("build")
    db.cli("retention", "--hourly-days", "3", "--daily-days", "forever")
    utc = db.query("select sum(total_requests) as n from public.get_dashboard_stats(%s, 6, 'UTC')", (project,))
    assert utc[0]["n"] == 2 * 24 * 5  # the daily aggregates outlive the hourly ones
    # a local day is its UTC day plus and minus hours: without those hours it cannot be exact
    with pytest.raises(psycopg.Error) as error:
        db.query("select * from public.get_dashboard_stats(%s, 6, 'America/New_York')", (project,))
    assert "hourly aggregates that retention deleted" in str(error.value)
    recent = db.query("select * from public.get_dashboard_stats(%s, 2, 'America/New_York')", (project,))
    reference = compute(raw_rows(db), load_prices(SEED), db.now())
    assert_dashboard_matches(recent, reference.local_dashboard(project, 2, "America/New_York", db.now()), "recent")


def test_the_project_zone_is_read_from_stored_local_days(built):
    db, reference = built
    stored = db.query(
        "select count(*) as n from analytics.usage_aggregations_local_daily where project_id = %s and time_zone = %s",
        (EDGE, "Asia/Kathmandu"),
    )
    assert stored[0]["n"] >= DAYS - 2  # every closed local day since the data began, zeros included
    expected = reference.local_dashboard(EDGE, DAYS, "Asia/Kathmandu", db.now())
    day = next(r["date"] for r in expected[5:] if r["total_requests"] > 0)
    with db.connect() as conn:
        conn.execute("set timezone = 'Pacific/Chatham'")  # the session's zone changes nothing
        actual = conn.execute(
            "select * from public.get_dashboard_stats(%s, %s, 'Asia/Kathmandu')", (EDGE, DAYS)
        ).fetchall()
        assert_dashboard_matches(actual, expected, "stored Kathmandu")
        # the stored day is what the call returns (a changed row shows), in a transaction rolled back
        with conn.transaction():
            conn.execute(
                "update analytics.usage_aggregations_local_daily set total_requests = total_requests + 1000"
                " where project_id = %s and date = %s",
                (EDGE, day),
            )
            changed = conn.execute(
                "select total_requests from public.get_dashboard_stats(%s, %s, 'Asia/Kathmandu') where date = %s",
                (EDGE, DAYS, day),
            ).fetchone()["total_requests"]
            assert changed == next(r["total_requests"] for r in expected if r["date"] == day) + 1000
            raise psycopg.Rollback


def test_a_changed_project_zone_adds_up_the_days_not_stored_in_it(built):
    db, reference = built
    with db.connect() as conn:
        conn.execute(
            "update analytics.project_settings set time_zone = 'Asia/Kolkata' where project_id = %s", (UNPRICED,)
        )
    try:
        for zone in ("Asia/Kolkata", "America/New_York"):
            actual = db.query("select * from public.get_dashboard_stats(%s, %s, %s)", (UNPRICED, DAYS, zone))
            assert_dashboard_matches(actual, reference.local_dashboard(UNPRICED, DAYS, zone, db.now()), zone)
        # a zone Postgres does not know, as the proxy might write it: skipped, the build goes on
        with db.connect() as conn:
            conn.execute(
                "update analytics.project_settings set time_zone = 'Mars/Olympus_Mons' where project_id = %s",
                (UNPRICED,),
            )
        db.dbt("run", "--select", "usage_aggregations_local_daily")
    finally:
        with db.connect() as conn:
            conn.execute(
                "update analytics.project_settings set time_zone = 'America/New_York' where project_id = %s",
                (UNPRICED,),
            )
