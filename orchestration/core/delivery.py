"""Delivery to people: a JSON POST to a webhook, and email over SMTP. Errors never carry a secret.

A webhook URL is a secret (Slack's carries its token in the path) and an SMTP URL may hold a
password: messages name only the scheme, host and port.

- A webhook answers 2xx to count as delivered. A 307 or 308 is followed with the same POST (at most
  MAX_REDIRECTS times); any other 3xx is a failed delivery: following a 301/302/303 would turn the
  POST into a GET and drop the alert.
- An SMTP password goes only over TLS (`smtps://`, or `smtp://…?starttls=true`) unless the URL says
  `insecure=true`. One `Mailer` keeps one SMTP session for every message of a check or a report run.
- Recipients are checked before anything is sent (`parse_addresses`): an address that could carry
  a header (a line break, a comma inside a name, angle brackets) is refused with a one-line error.
"""

from __future__ import annotations

import json
import re
import smtplib
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from email.message import EmailMessage

from orchestration import settings
from orchestration.core.errors import UserError

MAX_REDIRECTS = 3
# A conservative address: local part and domain without spaces, quotes, brackets, commas or control
# characters. Real recipients (team aliases, plus addressing) fit it; a header injection cannot.
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*")


class DeliveryError(Exception):
    """A delivery that did not succeed; the message is safe to log."""


def redact(url: str) -> str:
    """scheme://host:port of a URL, without user, password, path or query."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}"


def parse_addresses(text: str | None, where: str) -> tuple[str, ...]:
    """The comma-separated email addresses in `text` (blank: none); UserError naming `where` for any
    part that is not a plain address."""
    addresses = []
    for part in (text or "").split(","):
        address = part.strip(" \t")
        if not address:
            continue
        if not _ADDRESS.fullmatch(address):
            shown = address.encode("unicode_escape").decode("ascii")[:80]
            raise UserError(f"{where}: {shown!r} is not an email address like name@example.com; fix it and run again")
        addresses.append(address)
    return tuple(addresses)


# -- webhooks -----------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are answered by post_json itself (urllib would turn a redirected POST into a GET)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def post_json(url: str, body: dict, timeout: float | None = None) -> None:
    """POST `body` as JSON; any final status but 2xx, a timeout or a refused connection raises DeliveryError."""
    timeout = timeout or settings.delivery_timeout_seconds()
    data = json.dumps(body).encode()
    where = redact(url)
    target = url
    for _ in range(MAX_REDIRECTS + 1):
        request = urllib.request.Request(
            target,
            data=data,
            headers={"Content-Type": "application/json", "User-Agent": "watchllm-analytics"},
            method="POST",
        )
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                response.read()
                return
        except urllib.error.HTTPError as exc:
            location = exc.headers.get("Location") if exc.headers else None
            if exc.code in (307, 308) and location:
                target = urllib.parse.urljoin(target, location)
                if urllib.parse.urlsplit(target).scheme not in ("http", "https"):
                    raise DeliveryError(f"webhook {where} redirected to a non-HTTP address") from None
                continue
            if 300 <= exc.code < 400:
                raise DeliveryError(
                    f"webhook {where} answered HTTP {exc.code} (a redirect a POST cannot follow):"
                    " set WATCHLLM_ALERT_WEBHOOK_URL to the address it redirects to"
                ) from None
            raise DeliveryError(f"webhook {where} answered HTTP {exc.code}") from None
        except TimeoutError:
            raise DeliveryError(f"webhook {where} did not answer within {timeout:g} s") from None
        except urllib.error.URLError as exc:
            reason = "timed out" if isinstance(exc.reason, TimeoutError | socket.timeout) else type(exc.reason).__name__
            raise DeliveryError(f"webhook {where} unreachable ({reason})") from None
        except OSError as exc:
            raise DeliveryError(f"webhook {where} failed ({type(exc).__name__})") from None
    raise DeliveryError(f"webhook {where} redirected more than {MAX_REDIRECTS} times")


# -- email ----------------------------------------------------------------------------------------


def check_smtp_url(smtp_url: str) -> None:
    """UserError when WATCHLLM_SMTP_URL is malformed or would send a password without TLS."""
    parts = urllib.parse.urlsplit(smtp_url)
    where = redact(smtp_url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise UserError(f"WATCHLLM_SMTP_URL must look like smtp://host:port or smtps://host:port, got {where}")
    options = _options(parts)
    if parts.username and parts.scheme == "smtp" and not options["starttls"] and not options["insecure"]:
        raise UserError(
            f"WATCHLLM_SMTP_URL ({where}) has a password but no TLS: use smtps://, add ?starttls=true,"
            " or add ?insecure=true to send it in clear on purpose"
        )


def _options(parts: urllib.parse.SplitResult) -> dict[str, bool]:
    query = urllib.parse.parse_qs(parts.query)
    return {name: query.get(name, ["false"])[0].lower() in ("1", "true", "yes") for name in ("starttls", "insecure")}


class Mailer:
    """One SMTP session for many messages (opened on the first send, reopened after a failure).

    with Mailer(url) as mailer:
        mailer.send(message)
    """

    def __init__(self, smtp_url: str, timeout: float | None = None) -> None:
        self.url = smtp_url
        self.timeout = timeout or settings.delivery_timeout_seconds()
        self.parts = urllib.parse.urlsplit(smtp_url)
        self.where = redact(smtp_url)
        self.client: smtplib.SMTP | None = None
        self.sessions = 0  # how many sessions this mailer opened

    def __enter__(self) -> Mailer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _open(self) -> smtplib.SMTP:
        try:
            check_smtp_url(self.url)
        except UserError as exc:
            raise DeliveryError(str(exc)) from None
        options = _options(self.parts)
        if self.parts.scheme == "smtps":
            client = smtplib.SMTP_SSL(
                self.parts.hostname, self.parts.port or 465, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(self.parts.hostname, self.parts.port or 25, timeout=self.timeout)
        try:
            if options["starttls"]:
                client.starttls(context=ssl.create_default_context())
            if self.parts.username:
                client.login(urllib.parse.unquote(self.parts.username), urllib.parse.unquote(self.parts.password or ""))
        except BaseException:
            client.close()
            raise
        self.sessions += 1
        return client

    def send(self, message: EmailMessage) -> None:
        """Send one message in this session; DeliveryError (safe to log) when it does not go."""
        try:
            if self.client is None:
                self.client = self._open()
            self.client.send_message(message)
        except DeliveryError:
            raise
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise DeliveryError(f"SMTP server {self.where} answered {exc.smtp_code}") from None
        except TimeoutError:
            self.close()
            raise DeliveryError(f"SMTP server {self.where} did not answer within {self.timeout:g} s") from None
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise DeliveryError(f"SMTP server {self.where} failed ({type(exc).__name__})") from None

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.quit()
            except (smtplib.SMTPException, OSError):
                self.client.close()
            self.client = None


def send_email(smtp_url: str, message: EmailMessage, timeout: float | None = None) -> None:
    """Send one message in its own SMTP session."""
    with Mailer(smtp_url, timeout) as mailer:
        mailer.send(message)
