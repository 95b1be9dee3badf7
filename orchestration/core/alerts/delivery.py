"""Sending firings: every undelivered firing whose backoff has passed goes to each configured channel
that has not had it yet, grouped into messages (alerts.rendering), and every attempt is recorded.

- Each message is sent under its firings' row locks (`for update skip locked`): two checks never
  send the same firing.
- A channel that succeeded is never tried again; one that failed is retried by later checks with
  exponential backoff (WATCHLLM_ALERT_RETRY_BASE_MINUTES × 2^(failures − 1), at most 6 hours).
- A project's own failure is its own: a bad `alert_email_to`, a message that cannot be built or a
  refused delivery is recorded on that project's firings, and the next message goes out.
- One SMTP session serves every email of a check.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable

from psycopg import sql

from orchestration import settings
from orchestration.core import bookkeeping
from orchestration.core import delivery as transport
from orchestration.core.alerts.rendering import Message, alert_email, messages_of, webhook_payload
from orchestration.core.errors import UserError

MAX_BACKOFF = dt.timedelta(hours=6)

EVENT_COLUMNS = (
    "id, project_id, rule, subject, window_start, window_end, observed, threshold, message, details, fired_at,"
    " resolved_at, webhook_delivered_at, email_delivered_at, delivery_attempts"
)


def _names() -> dict[str, sql.Composable]:
    return {
        "events": bookkeeping.relation("alert_events"),
        "attempts": bookkeeping.relation("alert_delivery_attempts"),
        "settings": bookkeeping.relation("project_settings"),
        "columns": sql.SQL(EVENT_COLUMNS),
    }


def _has_project_recipients(cur) -> bool:
    return (
        cur.execute(
            "select 1 from information_schema.columns where table_schema = %s and table_name = 'project_settings'"
            " and column_name = 'alert_email_to'",
            (settings.analytics_schema(),),
        ).fetchone()
        is not None
    )


def _project_recipients(cur, project_id) -> tuple[str, ...]:
    """The project's own `alert_email_to`; UserError when it is not a list of plain addresses."""
    row = cur.execute(
        sql.SQL("select alert_email_to from {settings} where project_id = %s").format(**_names()), (project_id,)
    ).fetchone()
    return transport.parse_addresses(row[0] if row else None, f"project_settings.alert_email_to of {project_id}")


def deliver(conn, result, log: Callable[[str], None] = lambda line: None) -> None:
    """Send every undelivered firing whose backoff has passed to each configured channel that has not had it."""
    names = _names()
    webhook, smtp = settings.alert_webhook_url(), settings.smtp_url()
    operators = settings.alert_email_to()
    with conn.cursor() as cur:
        ready = cur.execute(
            sql.SQL(
                "select {columns} from {events} where delivered_at is null"
                " and (next_attempt_at is null or next_attempt_at <= now()) order by id"
            ).format(**names)
        ).fetchall()
        columns = [c.name for c in cur.description]
        has_recipients = _has_project_recipients(cur)
    candidates = messages_of([dict(zip(columns, row, strict=True)) for row in ready])
    mailer = transport.Mailer(smtp) if smtp else None
    with mailer or contextlib.nullcontext():
        for candidate in candidates:
            _deliver_message(conn, candidate, webhook, mailer, operators, has_recipients, result, log)
    result.smtp_sessions = mailer.sessions if mailer else 0
    with conn.cursor() as cur:
        result.pending = cur.execute(
            sql.SQL("select count(*) from {events} where delivered_at is null").format(**names)
        ).fetchone()[0]


def _deliver_message(conn, candidate: Message, webhook, mailer, operators, has_recipients, result, log) -> None:
    names = _names()
    with conn.transaction(), conn.cursor() as cur:
        # skip locked: a firing another check is sending right now is theirs
        rows = cur.execute(
            sql.SQL(
                "select {columns} from {events} where id = any(%s) and delivered_at is null"
                " and (next_attempt_at is null or next_attempt_at <= now()) order by id for update skip locked"
            ).format(**names),
            (candidate.ids,),
        ).fetchall()
        if not rows:
            return
        columns = [c.name for c in cur.description]
        message = Message(events=tuple(dict(zip(columns, row, strict=True)) for row in rows))

        errors: dict[str, str] = {}
        sends: dict[str, Callable[[], None]] = {}
        recipients: tuple[str, ...] = ()
        if mailer:
            try:
                own = _project_recipients(cur, message.project_id) if has_recipients else ()
                recipients = (*operators, *own)
            except UserError as exc:
                errors["email"] = str(exc)
        without_webhook = Message(tuple(e for e in message.events if e["webhook_delivered_at"] is None))
        without_email = Message(tuple(e for e in message.events if e["email_delivered_at"] is None))
        if webhook and without_webhook.events:
            sends["webhook"] = lambda: transport.post_json(webhook, webhook_payload(without_webhook))
        if recipients and without_email.events:
            sends["email"] = lambda: mailer.send(alert_email(without_email, recipients))
        if not without_email.events:
            errors.pop("email", None)  # it already has the email
        if not sends and not errors:
            if webhook is not None or recipients:  # every configured channel already has it
                cur.execute(
                    sql.SQL("update {events} set delivered_at = now() where id = any(%s)").format(**names),
                    (message.ids,),
                )
                result.delivered.extend(message.events)
            return
        for channel, send in sends.items():
            try:
                send()
                result.messages_sent += 1
            except transport.DeliveryError as exc:
                errors[channel] = str(exc)
            except Exception as exc:  # noqa: BLE001 (a message that cannot be built or sent is this project's failure)
                errors[channel] = f"could not send ({type(exc).__name__}: {exc})"
        attempted = {
            "webhook": [e["id"] for e in without_webhook.events],
            "email": [e["id"] for e in without_email.events],
        }
        for channel in (*sends, *(c for c in errors if c not in sends)):
            cur.executemany(
                sql.SQL("insert into {attempts} (event_id, channel, succeeded, error) values (%s, %s, %s, %s)").format(
                    **names
                ),
                [(event_id, channel, channel not in errors, errors.get(channel)) for event_id in attempted[channel]],
            )
            if channel not in errors:
                cur.execute(
                    sql.SQL("update {events} set {column} = now() where id = any(%s)").format(
                        column=sql.Identifier(f"{channel}_delivered_at"), **names
                    ),
                    (attempted[channel],),
                )
        if errors:
            # the n-th failure waits base * 2^(n-1), at most MAX_BACKOFF, before the next try
            cur.execute(
                sql.SQL(
                    "update {events} set delivery_attempts = delivery_attempts + 1, last_error = %s,"
                    " next_attempt_at = now() + least(%s * power(2, delivery_attempts), %s) where id = any(%s)"
                ).format(**names),
                (
                    "; ".join(f"{c}: {e}" for c, e in errors.items()),
                    settings.alert_retry_base(),
                    MAX_BACKOFF,
                    message.ids,
                ),
            )
        else:
            cur.execute(
                sql.SQL(
                    "update {events} set delivery_attempts = delivery_attempts + 1, last_error = null,"
                    " next_attempt_at = null, delivered_at = now() where id = any(%s)"
                ).format(**names),
                (message.ids,),
            )
        if errors:
            result.failed.append({"ids": message.ids, "project_id": message.project_id, "errors": errors})
            log(
                f"delivery of #{', #'.join(map(str, message.ids))} failed "
                f"({'; '.join(f'{c}: {e}' for c, e in errors.items())}); retried later"
            )
        else:
            result.delivered.extend(message.events)
            log(f"delivered #{', #'.join(map(str, message.ids))} by {', '.join(sends)}")
