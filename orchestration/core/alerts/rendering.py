"""What an alert looks like to people and scripts: the webhook's JSON (its `text` escaped for Slack),
the email (plain text and autoescaped HTML), the command's summary and its JSON.

A message is one firing, or for `unpriced_model` a digest of every undelivered firing of one
project, so a project that starts sending fifty unknown model names gets one message, not fifty.
Every message is about one project only.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from email.message import EmailMessage

from orchestration import settings
from orchestration.core import labels, templating

SHOWN_PER_KIND = 20  # lines of firings `alerts check` prints; `alerts list` has them all
DIGEST_RULES = ("unpriced_model",)
DIGEST_LINES = 50  # models a digest lists by name; the JSON's details carry them all


def plain(value):
    """A value as JSON carries it: decimals and times as strings, so no figure passes through a float."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


@dataclass(frozen=True)
class Message:
    """One message to people: a firing, or a digest of one project's firings of a digest rule."""

    events: tuple[dict, ...]

    @property
    def project_id(self) -> uuid.UUID:
        return self.events[0]["project_id"]

    @property
    def rule(self) -> str:
        return self.events[0]["rule"]

    @property
    def ids(self) -> list[int]:
        return [event["id"] for event in self.events]

    @property
    def is_digest(self) -> bool:
        return self.rule in DIGEST_RULES

    @property
    def text(self) -> str:
        """The human text: the firing's message, or the digest's summary and one line per firing."""
        if not self.is_digest:
            event = self.events[0]
            resolved = (
                f" (resolved since {event['resolved_at']:%Y-%m-%d %H:%M} UTC)" if event.get("resolved_at") else ""
            )
            return labels.visible(event["message"]) + resolved
        lines = [
            f"project {self.project_id}: {len(self.events)} model(s) have requests without a price; their cost is "
            "unknown until seeds/model_pricing.csv prices them:"
        ]
        for event in self.events[:DIGEST_LINES]:
            lines.append(f"- {labels.visible(event['subject'])}: {event['observed']:,} requests")
        if len(self.events) > DIGEST_LINES:
            lines.append(f"- … and {len(self.events) - DIGEST_LINES} more (`alerts list` shows them all)")
        return "\n".join(lines)

    @property
    def subject(self) -> str:
        if not self.is_digest or len(self.events) == 1:
            return self.events[0]["subject"]
        return f"{len(self.events)} models"


def messages_of(events: list[dict]) -> list[Message]:
    """Events grouped into messages: a digest per project for the digest rules, one message per other firing."""
    groups: dict[tuple, list[dict]] = {}
    for event in events:
        key = (event["project_id"], event["rule"]) if event["rule"] in DIGEST_RULES else ("event", event["id"])
        groups.setdefault(key, []).append(event)
    return [Message(events=tuple(group)) for group in groups.values()]


def webhook_payload(message: Message) -> dict:
    """The JSON body: `text` for people (Slack, Discord and similar incoming webhooks show it), escaped
    for Slack so no label can mention, link or format; and the fields for scripts."""
    first = message.events[0]
    observed = (
        sum((Decimal(e["observed"]) for e in message.events), Decimal(0)) if message.is_digest else first["observed"]
    )
    body = {
        "text": labels.slack(f":rotating_light: watchllm alert: {message.text}"),
        "event_id": first["id"],
        "project_id": plain(message.project_id),
        "rule": message.rule,
        "subject": message.subject,
        "observed": plain(observed),
        "threshold": plain(first["threshold"]),
        "window_start": plain(min(e["window_start"] for e in message.events)),
        "window_end": plain(max(e["window_end"] for e in message.events)),
        "fired_at": plain(min(e["fired_at"] for e in message.events)),
        "resolved_at": plain(first.get("resolved_at")) if not message.is_digest else None,
        "details": first.get("details") or {},
    }
    if message.is_digest:
        body["event_ids"] = message.ids
        body["details"] = {
            "models": [
                {"event_id": e["id"], "subject": e["subject"], "requests": plain(e["observed"])} for e in message.events
            ]
        }
    return body


def alert_email(message: Message, recipients: tuple[str, ...]) -> EmailMessage:
    """One message as a plain-text and HTML email. Its headers carry no tenant label."""
    email = EmailMessage()
    email["Subject"] = f"[watchllm] {message.rule.replace('_', ' ')}: project {message.project_id}"
    email["From"] = settings.email_from()
    email["To"] = ", ".join(recipients)
    email["X-Watchllm-Alert-Id"] = ", ".join(str(i) for i in message.ids)
    payload = webhook_payload(message)
    fields = [
        (name, labels.visible(payload[name]))
        for name in ("rule", "subject", "observed", "threshold", "window_start", "window_end", "fired_at")
    ]
    email.set_content(message.text + "\n\n" + "\n".join(f"{name}: {value}" for name, value in fields) + "\n")
    email.add_alternative(
        templating.render("alert_email.html.j2", text=message.text, project_id=message.project_id, fields=fields),
        subtype="html",
    )
    return email


def summary_lines(result, dry_run: bool = False) -> list[str]:
    """What `alerts check` prints (labels are shown escaped)."""
    verb = "would fire" if dry_run else "fired"
    lines = [
        f"alerts as of {result.evaluation.as_of:%Y-%m-%d %H:%M} UTC (day rules judge {result.evaluation.judged_day})"
    ]
    lines += [f"  note: {note}" for note in result.evaluation.notes]
    for project, rule, error in result.evaluation.failures:
        lines.append(f"  could not judge {rule} for {project}: {labels.visible(error)}")
    for event in result.fired[:SHOWN_PER_KIND]:
        number = "" if event["id"] is None else f" #{event['id']}"
        lines.append(f"  {verb}{number}: {labels.visible(event['message'])}")
    if len(result.fired) > SHOWN_PER_KIND:
        lines.append(f"  ... and {len(result.fired) - SHOWN_PER_KIND} more (`alerts list` shows them all)")
    for event in result.resolved[:SHOWN_PER_KIND]:
        label = "would resolve" if dry_run else f"resolved #{event['id']}"
        lines.append(
            f"  {label}: {event['rule']} for {event['project_id']} {labels.visible(event['subject'])}".rstrip()
        )
    for condition in result.suppressed[:SHOWN_PER_KIND]:
        lines.append(
            f"  in cooldown, not fired: {condition.rule} for {condition.project_id} "
            f"{labels.visible(condition.subject)}".rstrip()
        )
    if not dry_run:
        lines.append(
            f"  {len(result.fired)} fired, {len(result.resolved)} resolved, {len(result.delivered)} delivered, "
            f"{len(result.failed)} deliveries failed (retried by the next check), {result.pending} undelivered"
        )
        if result.pending and not (settings.alert_webhook_url() or settings.smtp_url()):
            lines.append(
                "  no channel is configured: set WATCHLLM_ALERT_WEBHOOK_URL, or WATCHLLM_SMTP_URL and "
                "WATCHLLM_ALERT_EMAIL_TO; undelivered alerts are sent once one is"
            )
    return lines


def to_json(result) -> str:
    return json.dumps(
        {
            "fired": [{k: plain(v) for k, v in e.items()} for e in result.fired],
            "resolved": [{k: plain(v) for k, v in e.items()} for e in result.resolved],
            "delivered": [e["id"] for e in result.delivered],
            "failed": [
                {"ids": e["ids"], "project_id": plain(e["project_id"]), "errors": e["errors"]} for e in result.failed
            ],
            "judging_failures": [
                {"project_id": str(p), "rule": r, "error": error} for p, r, error in result.evaluation.failures
            ],
            "pending": result.pending,
            "messages_sent": result.messages_sent,
            "smtp_sessions": result.smtp_sessions,
        }
    )
