"""One tenant cannot hurt another (docs/contract.md, section 16): a poisoned project beside two normal
ones, built, alerted and reported the way cron and Dagster do it, against the independent reference,
a real local webhook (HTTP) and a real local SMTP server (aiosmtpd).

The poisoned project logs 4 kB model names, Slack and Markdown control sequences, mathtext, newlines,
terminal escapes and bidirectional overrides; all its latencies before the judged day are 0 ms; and
its recipients (stored before they were validated) carry a header injection. Nothing of that may
fail a build, reach a person unescaped, or stop the other projects' alerts and reports.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import string
import uuid
from decimal import Decimal

import pytest
from conftest import assert_dashboard_matches, assert_matches_raw, insert_rows, raw_rows, request
from local_servers import Smtp, Webhook
from reference import compute, load_prices

from orchestration import settings

UTC = dt.UTC
CALM, BUSY, POISON = uuid.UUID(int=201), uuid.UUID(int=202), uuid.UUID(int=203)
DAYS = [dt.date(2026, 11, d) for d in range(1, 12)]
PROBLEM_DAY = dt.date(2026, 11, 9)
AS_OF = "2026-11-10T06:00:00+00:00"  # judges Nov 9
WEEK = "2026-W45"  # Nov 2 .. 8
POISON_ZONE = "Asia/Kathmandu"
NOISE = "".join(random.Random(3).choices(string.printable + "äß模型\u202e", k=3840))
HOSTILE_MODELS = (
    "x$\\q$",
    "<!channel> <https://evil.example|click here>",
    "line1\nline2",
    "\x1b[31mred\x1b[0m",
    "\u202eevil",
    "*bold* _it_ | `code` [link](https://evil.example)",
    "$\\frac{a}{b}$ \\textbf{x}",
)
BAD_RECIPIENTS = "poison@example.com\r\nBcc: victim@example.com"


def _rows() -> list[dict]:
    rnd = random.Random(17)
    rows = []
    for day in DAYS:
        start = dt.datetime.combine(day, dt.time(), UTC)
        for i in range(120):
            at = start + dt.timedelta(seconds=i * 700 + rnd.randrange(60))
            spike = day == PROBLEM_DAY
            rows.append(
                request(
                    CALM,
                    at,
                    cost_usd=Decimal("0.5") if spike else Decimal("0.0045"),
                    potential_cost_usd=Decimal("0.5") if spike else Decimal("0.0045"),
                    latency_ms=rnd.randint(300, 500),
                )
            )
            rows.append(
                request(
                    BUSY,
                    at + dt.timedelta(seconds=5),
                    model="gpt-4o",
                    cached=i % 3 == 0,
                    cost_usd=Decimal(0) if i % 3 == 0 else Decimal("0.0125"),
                    potential_cost_usd=Decimal("0.0125"),
                    latency_ms=rnd.randint(200, 900),
                )
            )
            model = HOSTILE_MODELS[i % len(HOSTILE_MODELS)]
            rows.append(
                request(
                    POISON,
                    at + dt.timedelta(seconds=9),
                    provider="acme\tlabs",
                    model=model,
                    cost_usd=None,
                    potential_cost_usd=None,
                    latency_ms=400 if day == PROBLEM_DAY else 0,
                )
            )
        for i in range(3):  # a model name of 3,840 characters of noise: quarantined, never a build failure
            rows.append(request(POISON, start + dt.timedelta(hours=3 + i), model=NOISE))
        if day == PROBLEM_DAY:
            for i in range(20):
                rows.append(
                    request(
                        BUSY,
                        start + dt.timedelta(minutes=7 * i + 3),
                        provider="acme",
                        model="acme-1",
                        cost_usd=None,
                        potential_cost_usd=None,
                    )
                )
    return rows


CRON_BUILD = ("build", "--quiet", *settings.PRODUCTION_DBT_ARGS)


@pytest.fixture(scope="module")
def db(make_db):
    db = make_db("wl_test_tenant_safety")
    db.cli("generate", "--rows", "0", "--allow-external")
    db.rows = _rows()
    insert_rows(db, db.rows)
    db.builds = [db.dbt(*CRON_BUILD, check=False) for _ in range(2)]
    with db.connect() as conn:
        conn.execute(
            "insert into analytics.project_settings (project_id, report_email_to) values (%s, 'calm@example.com')",
            (CALM,),
        )
        # stored before recipients were validated: judged where they are used
        conn.execute("alter table analytics.project_settings drop constraint project_settings_alert_email_to_addresses")
        conn.execute(
            "alter table analytics.project_settings drop constraint project_settings_report_email_to_addresses"
        )
        conn.execute(
            "insert into analytics.project_settings (project_id, time_zone, alert_email_to, report_email_to)"
            " values (%s, %s, %s, %s)",
            (POISON, POISON_ZONE, BAD_RECIPIENTS, BAD_RECIPIENTS),
        )
    db.dbt(*CRON_BUILD)  # puts the checks back (NOT VALID: the stored value stays, new ones are refused)
    return db


def test_two_builds_succeed_and_every_figure_equals_the_reference(db):
    assert [b.returncode for b in db.builds] == [0, 0], db.builds[0].stdout[-3000:]
    quarantined = db.query("select reason, count(*) as n from analytics.usage_logs_rejected group by reason")
    assert {r["reason"]: r["n"] for r in quarantined} == {"model is longer than 256 characters": 3 * len(DAYS)}
    assert_matches_raw(db)
    reference = compute(raw_rows(db), load_prices(settings.PRICING_SEED), db.now())
    names = {r["model"] for r in db.query("select distinct model from analytics.usage_by_model_daily")}
    assert set(HOSTILE_MODELS) <= names  # kept as logged (lower-cased), not mangled
    for project in (CALM, BUSY, POISON):
        assert_dashboard_matches(
            db.query("select * from public.get_dashboard_stats(%s, 60, %s)", (project, POISON_ZONE)),
            reference.local_dashboard(project, 60, POISON_ZONE, db.now()),
            f"{project} in {POISON_ZONE}",
        )


def test_a_new_recipient_that_could_inject_a_header_is_refused_where_it_is_set(db):
    import psycopg

    with db.connect() as conn, pytest.raises(psycopg.errors.CheckViolation, match="alert_email_to_addresses"):
        conn.execute(
            "update analytics.project_settings set alert_email_to = %s where project_id = %s", (BAD_RECIPIENTS, CALM)
        )


@pytest.fixture
def servers():
    webhook, smtp = Webhook(), Smtp()
    yield webhook, smtp
    webhook.close()
    smtp.close()


def test_every_project_is_alerted_on_its_own_and_no_label_reaches_slack_unescaped(db, servers):
    webhook, smtp = servers
    with db.connect() as conn:
        conn.execute("drop table if exists analytics.alert_delivery_attempts, analytics.alert_events")
    env = {
        "WATCHLLM_ALERT_WEBHOOK_URL": webhook.url,
        "WATCHLLM_SMTP_URL": smtp.url,
        "WATCHLLM_ALERT_EMAIL_TO": "ops@example.com",
        "WATCHLLM_ALERT_TIMEOUT_SECONDS": "2",
    }
    result = db.cli("alerts", "check", "--as-of", AS_OF, "--record", "--json", extra_env=env)
    outcome = json.loads(result.stdout)
    fired = {(uuid.UUID(e["project_id"]), e["rule"], e["subject"]) for e in outcome["fired"]}
    poison_models = {f"acme\tlabs/{m}" for m in HOSTILE_MODELS}
    assert fired == {
        (CALM, "daily_cost_spike", ""),
        (BUSY, "unpriced_model", "acme/acme-1"),
        (POISON, "latency_p95_regression", ""),  # against a 7-day p95 of 0 ms
        *((POISON, "unpriced_model", model) for model in poison_models),
    }
    assert outcome["judging_failures"] == []

    # one message per firing, and one digest per project for its unpriced models
    bodies = {(uuid.UUID(b["project_id"]), b["rule"]): b for b in webhook.accepted}
    assert len(webhook.requests) == len(bodies) == 4
    digest = bodies[(POISON, "unpriced_model")]
    assert {m["subject"] for m in digest["details"]["models"]} == poison_models
    judged = (PROBLEM_DAY, PROBLEM_DAY + dt.timedelta(days=1))  # the judged day and "today" of the check
    assert Decimal(digest["observed"]) == sum(
        1 for r in db.rows if r["project_id"] == POISON and r["model"] != NOISE and r["created_at"].date() in judged
    )
    latency = bodies[(POISON, "latency_p95_regression")]
    assert Decimal(latency["threshold"]) == 100 and "above the 0 ms" in latency["text"]
    for body in webhook.accepted:
        text = body["text"]
        assert not any(sign in text for sign in ("<!", "<http", "\x1b", "\u202e", "\t", "\r")), text
        assert all(ch == "\n" or ch.isprintable() for ch in text), text
    assert "&lt;!channel&gt; &lt;https://evil.example|click here&gt;" in digest["text"]
    assert "line1\\u000aline2" in digest["text"] and "acme\\u0009labs" in digest["text"]

    # email: the normal projects' alerts reach the operator in one SMTP session; the poisoned project's
    # recipients are refused and recorded on its firings, and nothing reaches the injected address
    assert outcome["smtp_sessions"] == 1
    recipients = [to for tos, _ in smtp.messages for to in tos]
    assert "victim@example.com" not in recipients and not any("poison" in to for to in recipients)
    subjects = sorted(str(m["Subject"]).strip() for _, m in smtp.messages)
    assert subjects == sorted(
        [f"[watchllm] daily cost spike: project {CALM}", f"[watchllm] unpriced model: project {BUSY}"]
    )
    errors = db.query(
        "select distinct e.project_id, a.error from analytics.alert_delivery_attempts as a"
        " join analytics.alert_events as e on e.id = a.event_id where not a.succeeded"
    )
    assert {r["project_id"] for r in errors} == {POISON}
    assert all("alert_email_to of" in r["error"] and "is not an email address" in r["error"] for r in errors)
    html = next(m for _, m in smtp.messages if str(BUSY) in m["Subject"]).get_body(("html",)).get_content()
    assert "acme/acme-1" in html


def test_every_project_report_renders_with_its_labels_escaped(db, tmp_path):
    for project in (CALM, BUSY, POISON):
        out = tmp_path / str(project)
        db.cli("report", str(project), "--week", WEEK, "--out", str(out))
        assert sorted(p.name for p in out.iterdir()) == sorted(
            ["report.html", "cost_vs_potential.png", "hit_rate.png", "top_models.png", "latency.png", "providers.png"]
        )
    page = (tmp_path / str(POISON) / "report.html").read_text()
    assert "<!channel>" not in page and "&lt;!channel&gt;" in page
    assert "x$\\q$" in page and "line1\\u000aline2" in page and "\x1b" not in page and "\u202e" not in page
    assert f'<span id="time-zone">{POISON_ZONE}</span>' in page


def test_a_report_email_address_that_could_inject_a_header_is_a_one_line_error(db, tmp_path):
    result = db.cli("report", str(CALM), "--week", WEEK, "--out", str(tmp_path), "--email", BAD_RECIPIENTS, check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "--email" in result.stderr and "is not an email address" in result.stderr


def test_the_weekly_asset_sends_each_project_on_its_own_and_a_retry_sends_only_what_is_missing(
    db, servers, monkeypatch, tmp_path
):
    import dagster as dg

    from orchestration.defs.notifications import weekly_savings_reports

    _, smtp = servers
    with db.connect() as conn:
        conn.execute("drop table if exists analytics.report_deliveries")
    for name, value in {**db.env, "WATCHLLM_SMTP_URL": smtp.url, "WATCHLLM_REPORTS_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)

    def materialize():
        return dg.materialize([weekly_savings_reports], partition_key="2026-11-02", raise_on_error=False)

    first = materialize()
    assert not first.success  # the poisoned project failed, and says so
    failure = next(e for e in first.all_events if e.event_type_value == "STEP_FAILURE")
    described = failure.event_specific_data.user_failure_data
    assert str(POISON) in described.description and "report_email_to" in described.description
    assert described.metadata["emails_sent"].value == 1 and described.metadata["projects_rendered"].value == 3
    assert [tos for tos, _ in smtp.messages] == [["calm@example.com"]]
    for project in (CALM, BUSY, POISON):  # every project's report was rendered
        assert (tmp_path / "weekly" / WEEK / str(project) / "report.html").exists()
    assert [r["project_id"] for r in db.query("select project_id from analytics.report_deliveries")] == [CALM]

    second = materialize()  # a retry: CALM's report is not sent twice
    assert not second.success and len(smtp.messages) == 1
