"""Alerts end to end: generated traffic with known problems in known projects, `alerts check` as cron
runs it, delivery to a real local webhook (HTTP) and a real local SMTP server (aiosmtpd).

The days are fixed (November 2026) and the checks judge them with --as-of, so the expected
alerts do not depend on when the suite runs. Nov 9 is the day with the problems, Nov 10 a quiet
day (the problems clear), Nov 11 repeats two of them (re-fire and the once-only unpriced alert).
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import random
import uuid
from decimal import Decimal

import pytest
from conftest import request
from local_servers import Smtp, Webhook

UTC = dt.UTC
DAYS = [dt.date(2026, 11, d) for d in range(1, 12)]
PROBLEM_DAY, QUIET_DAY, REPEAT_DAY = dt.date(2026, 11, 9), dt.date(2026, 11, 10), dt.date(2026, 11, 11)
AS_OF = "2026-11-10T06:00:00+00:00"  # judges Nov 9
PER_DAY = 200
COST = Decimal("0.01")

STEADY, HIT_DROP, SPIKE, UNPRICED, BUDGET, LATENCY, OVERRIDE, TINY = (uuid.UUID(int=i) for i in range(1, 9))
UNPRICED_MODEL = "acme/acme-mystery-1"

EXPECTED = {
    (HIT_DROP, "cache_hit_rate_drop", ""),
    (SPIKE, "daily_cost_spike", ""),
    (UNPRICED, "unpriced_model", UNPRICED_MODEL),
    (BUDGET, "monthly_budget", "2026-11 100%"),
    (LATENCY, "latency_p95_regression", ""),
    (OVERRIDE, "cache_hit_rate_drop", ""),
}


def _day_rows(project: uuid.UUID, day: dt.date, rnd: random.Random) -> list[dict]:
    cached_share, cost, latency, count = 0.4, COST, (400, 600), PER_DAY
    if project == HIT_DROP:
        cached_share = 0.1 if day in (PROBLEM_DAY, REPEAT_DAY) else 0.5
    if project == OVERRIDE:
        cached_share = 0.42 if day == PROBLEM_DAY else 0.5
    if project == SPIKE and day == PROBLEM_DAY:
        cost = Decimal("0.2")
    if project == LATENCY and day == PROBLEM_DAY:
        latency = (2900, 3100)
    if project == TINY:
        count, cost = 100, (Decimal("0.01") if day == PROBLEM_DAY else Decimal("0.0001"))
    start = dt.datetime.combine(day, dt.time(), UTC)
    rows = []
    for i in range(count):
        cached = i < count * cached_share
        rows.append(
            request(
                project,
                start + dt.timedelta(seconds=i * 86400 // count + rnd.randrange(60)),
                cached=cached,
                cost_usd=Decimal(0) if cached else cost,
                potential_cost_usd=cost,
                latency_ms=rnd.randint(*latency),
            )
        )
    if project == UNPRICED and day in (PROBLEM_DAY, REPEAT_DAY):
        for i in range(30):
            rows.append(
                request(
                    project,
                    start + dt.timedelta(minutes=i),
                    provider="acme",
                    model="acme-mystery-1",
                    cost_usd=None,
                    potential_cost_usd=None,
                )
            )
    return rows


@pytest.fixture(scope="module")
def db(make_db):
    from conftest import insert_rows

    db = make_db("wl_test_alerts")
    db.cli("generate", "--rows", "0", "--allow-external")  # creates usage_logs
    rnd = random.Random(7)
    rows = [
        r
        for day in DAYS
        for p in (STEADY, HIT_DROP, SPIKE, UNPRICED, BUDGET, LATENCY, OVERRIDE, TINY)
        for r in _day_rows(p, day, rnd)
    ]
    insert_rows(db, rows)
    db.build_models()
    with db.connect() as conn:
        conn.execute(
            "insert into analytics.project_settings (project_id, monthly_budget_usd) values (%s, 10)", (BUDGET,)
        )
        conn.execute(
            "insert into analytics.project_settings (project_id, hit_rate_drop_points, alert_email_to)"
            " values (%s, 5, 'owner-of-override@example.com')",
            (OVERRIDE,),
        )
    db.rows = rows
    return db


@pytest.fixture
def servers():
    webhook, smtp = Webhook(), Smtp()
    yield webhook, smtp
    webhook.close()
    smtp.close()


@pytest.fixture
def clean(db):
    with db.connect() as conn:
        conn.execute("drop table if exists analytics.alert_delivery_attempts, analytics.alert_events")
    return db


def check(db, webhook=None, smtp=None, as_of=AS_OF, **env) -> dict:
    extra = {
        "WATCHLLM_ALERT_RETRY_BASE_MINUTES": "0",
        "WATCHLLM_ALERT_TIMEOUT_SECONDS": "1",
        **({"WATCHLLM_ALERT_WEBHOOK_URL": webhook.url} if webhook else {}),
        **({"WATCHLLM_SMTP_URL": smtp.url, "WATCHLLM_ALERT_EMAIL_TO": "ops@example.com"} if smtp else {}),
        **env,
    }
    result = db.cli("alerts", "check", "--as-of", as_of, "--record", "--json", extra_env=extra)
    return json.loads(result.stdout)


def _key(body: dict) -> tuple:
    return (uuid.UUID(body["project_id"]), body["rule"], body["subject"])


def _expected_observed(db) -> dict:
    """The figures the alerts must carry, computed from the generated rows (not from the marts)."""

    def of(project, day, model=None):
        return [
            r
            for r in db.rows
            if r["project_id"] == project
            and r["created_at"].date() == day
            and (model is None or f"{r['provider']}/{r['model']}" == model)
        ]

    hit = of(HIT_DROP, PROBLEM_DAY)
    spike = sum((r["cost_usd"] for r in of(SPIKE, PROBLEM_DAY)), Decimal(0))
    budget = sum(
        (
            r["cost_usd"]
            for r in db.rows
            if r["project_id"] == BUDGET and dt.date(2026, 11, 1) <= r["created_at"].date() <= QUIET_DAY
        ),
        Decimal(0),
    )
    return {
        (HIT_DROP, "cache_hit_rate_drop", ""): round(Decimal(100) * sum(r["cached"] for r in hit) / len(hit), 2),
        (SPIKE, "daily_cost_spike", ""): spike,
        (UNPRICED, "unpriced_model", UNPRICED_MODEL): Decimal(30),
        (BUDGET, "monthly_budget", "2026-11 100%"): budget,
    }


def test_exactly_the_expected_alerts_fire_once_by_webhook_and_email(clean, servers):
    db, (webhook, smtp) = clean, servers
    outcome = check(db, webhook, smtp)
    assert {(uuid.UUID(e["project_id"]), e["rule"], e["subject"]) for e in outcome["fired"]} == EXPECTED
    assert {_key(body) for body in webhook.accepted} == EXPECTED and len(webhook.requests) == len(EXPECTED)

    for key, observed in _expected_observed(db).items():
        body = next(b for b in webhook.accepted if _key(b) == key)
        assert Decimal(body["observed"]) == observed, (key, body)
    spike = next(b for b in webhook.accepted if _key(b)[1] == "daily_cost_spike")
    baseline = (
        sum(
            (
                r["cost_usd"]
                for r in db.rows
                if r["project_id"] == SPIKE
                and PROBLEM_DAY - dt.timedelta(days=7) <= r["created_at"].date() < PROBLEM_DAY
            ),
            Decimal(0),
        )
        / 7
    )
    assert Decimal(spike["threshold"]) == max(baseline * 3, baseline + 10)
    assert spike["window_start"] == "2026-11-09T00:00:00+00:00" and spike["window_end"] == "2026-11-10T00:00:00+00:00"
    budget = next(b for b in webhook.accepted if _key(b)[1] == "monthly_budget")
    assert Decimal(budget["threshold"]) == 10 and Decimal(budget["observed"]) == Decimal("12.00")
    assert "month to date cost $12.00 reached 100% of the monthly budget $10.00 for 2026-11" in budget["text"]
    latency = next(b for b in webhook.accepted if _key(b)[1] == "latency_p95_regression")
    assert Decimal(2900) * Decimal("0.99") <= Decimal(latency["observed"]) <= Decimal(3100) * Decimal("1.01")

    # tenant data never crosses: each message names its own project and no other
    projects = {str(p) for p, _, _ in EXPECTED} | {str(STEADY), str(TINY)}
    for body in webhook.accepted:
        others = projects - {body["project_id"]}
        assert not any(other in json.dumps(body) for other in others), body

    # one email per alert to the operator; the override project's owner gets its own alert too
    by_recipient = {}
    for recipients, message in smtp.messages:
        for to in recipients:
            by_recipient.setdefault(to, []).append(message)
    assert len(by_recipient["ops@example.com"]) == len(EXPECTED)
    assert [m["X-Watchllm-Alert-Id"] for m in by_recipient["owner-of-override@example.com"]] == [
        str(next(e["id"] for e in outcome["fired"] if e["project_id"] == str(OVERRIDE)))
    ]
    budget_mail = next(m for m in by_recipient["ops@example.com"] if "monthly budget" in m["Subject"])
    assert str(BUDGET) in budget_mail["Subject"]
    assert budget_mail.get_body(("plain",)).get_content().startswith(f"project {BUDGET}: month to date cost $12.00")
    assert "$12.00" in budget_mail.get_body(("html",)).get_content()

    # a second check finds the same conditions and delivers nothing new
    again = check(db, webhook, smtp)
    assert again["fired"] == [] and again["delivered"] == [] and again["pending"] == 0
    assert len(webhook.requests) == len(EXPECTED) and len(smtp.messages) == len(EXPECTED)
    # nothing secret in what the table keeps
    assert not db.query("select 1 from analytics.alert_events where coalesce(last_error, '') like '%SECRET%'")


def test_a_failing_webhook_is_retried_with_backoff_and_delivered_once_it_recovers(clean, servers):
    db, (webhook, _) = clean, servers
    webhook.answers.extend([500] * len(EXPECTED))
    first = check(db, webhook)
    assert len(first["fired"]) == len(EXPECTED) and first["delivered"] == [] and first["pending"] == len(EXPECTED)
    errors = {r["last_error"] for r in db.query("select last_error from analytics.alert_events")}
    assert errors == {f"webhook: webhook http://127.0.0.1:{webhook.server.server_port} answered HTTP 500"}

    webhook.answers.extend([("sleep", 2.5)] * len(EXPECTED))  # answers after the client's 1 s timeout
    second = check(db, webhook, WATCHLLM_ALERT_RETRY_BASE_MINUTES="60")
    assert second["delivered"] == [] and second["pending"] == len(EXPECTED)
    assert {r["last_error"].split(" did ")[-1] for r in db.query("select last_error from analytics.alert_events")} == {
        "not answer within 1 s"
    }
    # the second failure backs off 60 * 2 minutes: a check within it does not try again
    waits = db.query(
        "select next_attempt_at - last_attempt as wait from analytics.alert_events,"
        " lateral (select max(attempted_at) as last_attempt from analytics.alert_delivery_attempts"
        " where event_id = id) as a"
    )
    assert all(dt.timedelta(minutes=119) < w["wait"] <= dt.timedelta(minutes=121) for w in waits), waits
    assert check(db, webhook)["delivered"] == [] and len(webhook.requests) == 2 * len(EXPECTED)
    with db.connect() as conn:  # two hours later
        conn.execute("update analytics.alert_events set next_attempt_at = now() - interval '1 second'")

    third = check(db, webhook)
    assert len(third["delivered"]) == len(EXPECTED) and third["pending"] == 0
    assert sorted(b["event_id"] for b in webhook.accepted) == sorted(e["id"] for e in first["fired"])
    attempts = db.query(
        "select event_id, count(*) as tries, count(*) filter (where succeeded) as ok"
        " from analytics.alert_delivery_attempts group by event_id"
    )
    assert {(a["tries"], a["ok"]) for a in attempts} == {(3, 1)} and len(attempts) == len(EXPECTED)
    assert check(db, webhook)["delivered"] == [] and len(webhook.accepted) == len(EXPECTED)


def test_alerts_resolve_when_the_condition_clears_and_refire_only_after_the_cooldown(clean, servers):
    db, (webhook, _) = clean, servers
    check(db, webhook)
    cleared = check(db, webhook, as_of="2026-11-11T06:00:00+00:00")  # judges the quiet Nov 10
    assert {(uuid.UUID(e["project_id"]), e["rule"], e["subject"]) for e in cleared["resolved"]} == EXPECTED - {
        (BUDGET, "monthly_budget", "2026-11 100%"),  # the month's spend stays over budget
        (UNPRICED, "unpriced_model", UNPRICED_MODEL),  # seen again on Nov 11, "today" for this check
    }
    assert cleared["fired"] == []
    with db.connect() as conn:  # as if a price had been added and the model had cleared
        conn.execute("update analytics.alert_events set resolved_at = now() where rule = 'unpriced_model'")
    # Nov 11 repeats the hit-rate drop and the unpriced model: within the cooldown nothing fires ...
    assert check(db, webhook, as_of="2026-11-12T06:00:00+00:00")["fired"] == []
    # ... after it the drop fires again; the unpriced model never does (once per project and model)
    refired = check(db, webhook, as_of="2026-11-12T06:00:00+00:00", WATCHLLM_ALERT_COOLDOWN_HOURS="0")
    assert [(uuid.UUID(e["project_id"]), e["rule"]) for e in refired["fired"]] == [(HIT_DROP, "cache_hit_rate_drop")]
    assert len(db.query("select 1 from analytics.alert_events where rule = 'unpriced_model'")) == 1
    assert len(webhook.accepted) == len(EXPECTED) + 1
    listed = db.cli("alerts", "list", "--open").stdout.splitlines()
    assert len(listed) == 2 and all("open, delivered" in line for line in listed)  # the budget and the new drop
    rows = db.query("select count(*) as n from analytics.alert_events where project_id = %s", (HIT_DROP,))
    assert rows[0]["n"] == 2


def test_dry_run_records_and_sends_nothing_and_two_checks_at_once_deliver_each_alert_once(clean, servers):
    db, (webhook, smtp) = clean, servers
    dry = db.cli(
        "alerts", "check", "--dry-run", "--as-of", AS_OF, extra_env={"WATCHLLM_ALERT_WEBHOOK_URL": webhook.url}
    )
    assert dry.stdout.count("would fire") == len(EXPECTED) and not webhook.requests
    assert not db.query("select 1 from pg_tables where tablename = 'alert_events'")

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda _: check(db, webhook, smtp), range(2)))
    assert sum(len(o["fired"]) for o in outcomes) == len(EXPECTED)
    assert sum(len(o["delivered"]) for o in outcomes) == len(EXPECTED)
    assert sorted(_key(b) for b in webhook.accepted) == sorted(EXPECTED) and len(webhook.requests) == len(EXPECTED)
    assert len(smtp.messages) == len(EXPECTED)


def test_new_aggregates_request_one_alert_check_run_that_records_what_it_did(clean, servers, monkeypatch):
    import dagster as dg

    from orchestration.defs.notifications import alert_events, usage_alerts

    db, (webhook, _) = clean, servers
    for name, value in {**db.env, "WATCHLLM_ALERTS_AS_OF": AS_OF, "WATCHLLM_ALERT_WEBHOOK_URL": webhook.url}.items():
        monkeypatch.setenv(name, value)
    instance = dg.DagsterInstance.ephemeral()
    defs = dg.Definitions(
        assets=[alert_events, dg.AssetSpec("usage_aggregations_hourly"), dg.AssetSpec("usage_aggregations_daily")],
        sensors=[usage_alerts],
    )
    assert defs.get_sensor_def("usage_alerts").default_status == dg.DefaultSensorStatus.RUNNING
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert first.total_requested == 0 and not webhook.requests

    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="usage_aggregations_hourly"))
    after_build = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert after_build.total_requested == 1  # the alert check, requested as a run of its own
    # the evaluation only asks for a run: nothing is judged, recorded or sent by it
    assert not webhook.requests and not db.query("select 1 from pg_tables where tablename = 'alert_events'")

    run = dg.materialize([alert_events], instance=instance)
    assert run.success and len(webhook.accepted) == len(EXPECTED)
    metadata = run.asset_materializations_for_node("alert_events")[0].metadata
    assert metadata["fired"].value == len(EXPECTED) and metadata["delivered"].value == len(EXPECTED)
    assert str(SPIKE) in metadata["fired_alerts"].value and metadata["failures"].value == "none"

    # nothing new upstream: no new run
    again = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=after_build.cursor)
    assert again.total_requested == 0


def test_a_webhook_redirect_is_never_turned_into_a_get(servers):
    from orchestration.core import delivery

    webhook, _ = servers
    body = {"text": "hello", "n": 1}
    webhook.answers.append(("redirect", 308, "/moved/here"))
    delivery.post_json(webhook.url, body)  # a 307/308 is followed with the same POST
    assert webhook.methods == [("POST", "/hooks/T0SECRET/B0SECRET/token"), ("POST", "/moved/here")]
    assert webhook.accepted == [body]
    for code in (301, 302, 303):
        webhook.answers.append(("redirect", code, "/elsewhere"))
        with pytest.raises(delivery.DeliveryError, match=f"answered HTTP {code} .*redirect a POST cannot follow"):
            delivery.post_json(webhook.url, body)
    assert not any(method == "GET" for method, _ in webhook.methods) and len(webhook.accepted) == 1


def test_a_301_webhook_is_a_failed_delivery_retried_later(clean, servers):
    db, (webhook, _) = clean, servers
    webhook.answers.extend([("redirect", 301, "/moved")] * len(EXPECTED))
    outcome = check(db, webhook)
    assert outcome["delivered"] == [] and outcome["pending"] == len(EXPECTED)
    assert all(
        "HTTP 301" in e for e in {r["last_error"] for r in db.query("select last_error from analytics.alert_events")}
    )
    assert not any(method == "GET" for method, _ in webhook.methods)


def test_smtp_credentials_go_only_over_tls_unless_the_url_says_insecure(db, servers):
    _, smtp = servers
    cleartext = f"smtp://user:secret@127.0.0.1:{smtp.port}"
    result = db.cli(
        "alerts",
        "check",
        "--dry-run",
        "--as-of",
        AS_OF,
        check=False,
        extra_env={"WATCHLLM_SMTP_URL": cleartext, "WATCHLLM_ALERT_EMAIL_TO": "ops@example.com"},
    )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "has a password but no TLS" in result.stderr and "secret" not in result.stderr
    from orchestration.core import delivery

    with pytest.raises(delivery.DeliveryError, match="has a password but no TLS"):
        delivery.send_email(cleartext, delivery_message())
    assert smtp.messages == []  # nothing was sent, the password never left
    delivery.check_smtp_url(cleartext + "?insecure=true")  # said on purpose: allowed
    delivery.check_smtp_url(f"smtp://user:secret@127.0.0.1:{smtp.port}?starttls=true")
    delivery.check_smtp_url(f"smtps://user:secret@127.0.0.1:{smtp.port}")


def delivery_message():
    from email.message import EmailMessage

    message = EmailMessage()
    message["Subject"], message["From"], message["To"] = "t", "a@example.com", "b@example.com"
    message.set_content("x")
    return message


def test_a_replay_with_as_of_records_and_sends_nothing_unless_asked_to(clean, servers):
    db, (webhook, _) = clean, servers
    replay = db.cli(
        "alerts", "check", "--as-of", AS_OF, "--json", extra_env={"WATCHLLM_ALERT_WEBHOOK_URL": webhook.url}
    )
    assert len(json.loads(replay.stdout)["fired"]) == len(EXPECTED) and not webhook.requests
    assert not db.query("select 1 from pg_tables where tablename = 'alert_events'")
    recorded = check(db, webhook)  # --as-of with --record
    assert len(recorded["delivered"]) == len(EXPECTED)
    both = db.cli("alerts", "check", "--as-of", AS_OF, "--record", "--dry-run", check=False)
    assert both.returncode == 2 and "either --dry-run or --record" in both.stderr
