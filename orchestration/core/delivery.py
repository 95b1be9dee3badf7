"""Delivery to people: a JSON POST to a webhook, and email over SMTP. Errors never carry a secret.

A webhook URL is a secret (Slack's carries its token in the path) and an SMTP URL may hold a
password: messages name only the scheme, host and port.
"""

from __future__ import annotations

import html
import json
import smtplib
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from email.message import EmailMessage

from orchestration import settings


class DeliveryError(Exception):
    """A delivery that did not succeed; the message is safe to log."""


def escape(text: str) -> str:
    return html.escape(text, quote=True)


def redact(url: str) -> str:
    """scheme://host:port of a URL, without user, password, path or query."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}"


def post_json(url: str, body: dict, timeout: float | None = None) -> None:
    """POST `body` as JSON; any status but 2xx, a timeout or a refused connection raises DeliveryError."""
    timeout = timeout or settings.delivery_timeout_seconds()
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "watchllm-analytics"},
        method="POST",
    )
    where = redact(url)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"webhook {where} answered HTTP {exc.code}") from None
    except TimeoutError:
        raise DeliveryError(f"webhook {where} did not answer within {timeout:g} s") from None
    except urllib.error.URLError as exc:
        reason = "timed out" if isinstance(exc.reason, TimeoutError | socket.timeout) else type(exc.reason).__name__
        raise DeliveryError(f"webhook {where} unreachable ({reason})") from None
    except OSError as exc:
        raise DeliveryError(f"webhook {where} failed ({type(exc).__name__})") from None


def send_email(smtp_url: str, message: EmailMessage, timeout: float | None = None) -> None:
    """Send over smtp:// (STARTTLS with ?starttls=true) or smtps://, logging in when the URL has a user."""
    timeout = timeout or settings.delivery_timeout_seconds()
    parts = urllib.parse.urlsplit(smtp_url)
    where = redact(smtp_url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise DeliveryError(f"WATCHLLM_SMTP_URL must look like smtp://host:port or smtps://host:port, got {where}")
    options = urllib.parse.parse_qs(parts.query)
    starttls = options.get("starttls", ["false"])[0].lower() in ("1", "true", "yes")
    try:
        if parts.scheme == "smtps":
            client = smtplib.SMTP_SSL(
                parts.hostname, parts.port or 465, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(parts.hostname, parts.port or 25, timeout=timeout)
        with client:
            if starttls:
                client.starttls(context=ssl.create_default_context())
            if parts.username:
                client.login(urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
            client.send_message(message)
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"SMTP server {where} answered {exc.smtp_code}") from None
    except TimeoutError:
        raise DeliveryError(f"SMTP server {where} did not answer within {timeout:g} s") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"SMTP server {where} failed ({type(exc).__name__})") from None
