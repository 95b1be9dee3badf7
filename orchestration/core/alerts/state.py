"""Firings in analytics.alert_events: conditions become firings once, firings resolve, and a resolved
firing may fire again after the cooldown (an unpriced model: once per project and model, ever).

A partial unique index makes a second open firing of the same (project, rule, subject) impossible,
and one check at a time changes the state (an advisory lock), so two checks at once fire each
condition once. Delivery is `alerts.delivery`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from psycopg import sql
from psycopg.types.json import Jsonb

from orchestration import settings
from orchestration.core import bookkeeping
from orchestration.core.alerts import delivery
from orchestration.core.alerts.rendering import plain
from orchestration.core.alerts.rules import Condition, Evaluation, evaluate


@dataclass
class CheckResult:
    evaluation: Evaluation
    fired: list[dict] = field(default_factory=list)
    resolved: list[dict] = field(default_factory=list)
    suppressed: list[Condition] = field(default_factory=list)  # in their cooldown
    delivered: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)  # attempts that failed this time, retried later
    pending: int = 0  # firings still waiting for a channel (failed, backing off, or no channel set)
    messages_sent: int = 0  # webhook posts and emails that went out
    smtp_sessions: int = 0


def _events() -> sql.Identifier:
    return bookkeeping.relation("alert_events")


def check(
    conn,
    as_of: dt.datetime | None = None,
    dry_run: bool = False,
    log: Callable[[str], None] = lambda line: None,
) -> CheckResult:
    """Evaluate, record firings and resolutions, then deliver what is undelivered (`conn`: autocommit).

    With `dry_run` nothing is recorded or sent: the result says what would fire and resolve."""
    with conn.cursor() as cur:
        if not dry_run:
            bookkeeping.ensure(cur, bookkeeping.ALERT_TABLES)
        evaluation = evaluate(cur, as_of)
    for project, rule, error in evaluation.failures:
        log(f"could not judge {rule} for {project}: {error}")
    result = CheckResult(evaluation=evaluation)
    if dry_run:
        return _dry_run(conn, result)
    events = _events()
    with conn.transaction(), conn.cursor() as cur:
        # one check at a time changes the state; a second one waits and then sees the first's firings
        cur.execute("select pg_advisory_xact_lock(hashtext('watchllm_alert_state'))")
        open_by_key = {
            (project, rule, subject): event_id
            for event_id, project, rule, subject in cur.execute(
                sql.SQL("select id, project_id, rule, subject from {} where resolved_at is null").format(events)
            )
        }
        holding = {c.key for c in evaluation.conditions}
        gone = [
            event_id
            for (project, rule, subject), event_id in open_by_key.items()
            if (project, rule, subject) not in holding and project in evaluation.judged.get(rule, set())
        ]
        if gone:
            for row in cur.execute(
                sql.SQL(
                    "update {} set resolved_at = now() where id = any(%s)"
                    " returning id, project_id, rule, subject, message"
                ).format(events),
                (gone,),
            ).fetchall():
                result.resolved.append(_event_dict(row))
                log(f"resolved #{row[0]} {row[2]} for {row[1]} {row[3]}".rstrip())
        new = [c for c in evaluation.conditions if c.key not in open_by_key]
        cooling = _in_cooldown(cur, new)
        for condition in new:
            if condition.key in cooling:
                result.suppressed.append(condition)
        firing = [c for c in new if c.key not in cooling]
        if firing:
            cur.executemany(
                sql.SQL(
                    "insert into {} (project_id, rule, subject, window_start, window_end, observed, threshold,"
                    " message, details) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " on conflict (project_id, rule, subject) where resolved_at is null do nothing"
                    " returning id, project_id, rule, subject, message"
                ).format(events),
                [
                    (
                        c.project_id,
                        c.rule,
                        c.subject,
                        c.window_start,
                        c.window_end,
                        c.observed,
                        c.threshold,
                        c.message,
                        Jsonb({name: plain(value) for name, value in c.details.items()}),
                    )
                    for c in firing
                ],
                returning=True,
            )
            while True:
                row = cur.fetchone()
                if row:
                    result.fired.append(_event_dict(row))
                    log(f"fired #{row[0]}: {row[4]}")
                if not cur.nextset():
                    break
    delivery.deliver(conn, result, log)
    return result


def _event_dict(row) -> dict:
    return dict(zip(("id", "project_id", "rule", "subject", "message"), row, strict=True))


def _in_cooldown(cur, conditions: list[Condition]) -> set[tuple[uuid.UUID, str, str]]:
    """The keys among `conditions` that resolved too recently to fire again (unpriced models: ever)."""
    if not conditions:
        return set()
    rows = cur.execute(
        sql.SQL(
            "select project_id, rule, subject, max(resolved_at) from {}"
            " where (project_id, rule, subject) in (select * from unnest(%s::uuid[], %s::text[], %s::text[]))"
            " and resolved_at is not null group by project_id, rule, subject"
        ).format(_events()),
        (
            [c.project_id for c in conditions],
            [c.rule for c in conditions],
            [c.subject for c in conditions],
        ),
    ).fetchall()
    since = dt.datetime.now(dt.UTC) - settings.alert_cooldown()
    return {(p, r, s) for p, r, s, last in rows if r == "unpriced_model" or last > since}


def _dry_run(conn, result: CheckResult) -> CheckResult:
    with conn.cursor() as cur:
        recorded = bookkeeping.exists(cur, "alert_events")
        open_keys = set()
        cooling = set()
        if recorded:
            open_keys = {
                tuple(row)
                for row in cur.execute(
                    sql.SQL("select project_id, rule, subject from {} where resolved_at is null").format(_events())
                )
            }
            cooling = _in_cooldown(cur, result.evaluation.conditions)
        for condition in result.evaluation.conditions:
            if condition.key not in open_keys and condition.key not in cooling:
                result.fired.append(
                    {
                        "id": None,
                        "project_id": condition.project_id,
                        "rule": condition.rule,
                        "subject": condition.subject,
                        "message": condition.message,
                    }
                )
        holding = {c.key for c in result.evaluation.conditions}
        for key in open_keys:
            if key not in holding and key[0] in result.evaluation.judged[key[1]]:
                result.resolved.append({"id": None, "project_id": key[0], "rule": key[1], "subject": key[2]})
    return result


def recent_events(cur, limit: int = 50, open_only: bool = False) -> list[dict]:
    bookkeeping.ensure(cur, bookkeeping.ALERT_TABLES)
    query = sql.SQL(
        "select id, project_id, rule, subject, observed, threshold, fired_at, delivered_at, resolved_at,"
        " delivery_attempts, last_error from {events} {where} order by id desc limit %s"
    ).format(events=_events(), where=sql.SQL("where resolved_at is null" if open_only else ""))
    rows = cur.execute(query, (limit,)).fetchall()
    columns = [c.name for c in cur.description]
    return [dict(zip(columns, row, strict=True)) for row in rows]
