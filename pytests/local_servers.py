"""Real local servers for delivery tests: an HTTP webhook receiver and an SMTP server (aiosmtpd), on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Webhook:
    """Records every request. `answers` is a queue of behaviours for the next requests: an HTTP status,
    ("sleep", seconds) to answer late (a client timeout), or ("redirect", status, path) to send the
    client elsewhere on this server; when empty, it answers 200. `methods` lists each request's
    method and path."""

    def __init__(self) -> None:
        self.requests: list[dict] = []  # every POST received, whatever it was answered
        self.accepted: list[dict] = []  # the bodies answered 200
        self.answers: deque = deque()
        self.methods: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                with webhook.lock:
                    webhook.methods.append(("GET", self.path))
                self.send_response(200)
                self.end_headers()

            def do_POST(self):  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with webhook.lock:
                    webhook.methods.append(("POST", self.path))
                    webhook.requests.append(body)
                    answer = webhook.answers.popleft() if webhook.answers else 200
                if isinstance(answer, tuple) and answer[0] == "redirect":
                    self.send_response(answer[1])
                    self.send_header("Location", answer[2])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if isinstance(answer, tuple):
                    time.sleep(answer[1])
                    answer = 200
                    late = True
                else:
                    late = False
                self.send_response(answer)
                self.end_headers()
                self.wfile.write(b"ok")
                if answer == 200 and not late:
                    with webhook.lock:
                        webhook.accepted.append(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/T0SECRET/B0SECRET/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Smtp:
    """An aiosmtpd server that keeps every message it receives, parsed."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        smtp = self
        self.messages: list = []

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
                message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
                smtp.messages.append((envelope.rcpt_tos, message))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        self.url = f"smtp://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.controller.stop()
