"""What the end-to-end tests share: a real SMTP server on loopback, and running the
operator's CLI (and so Airflow) in a subprocess against the test's warehouse."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from typing import Any

import pytest


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(msg)  # type: ignore[arg-type]
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"

    def to(self, rcpt: str) -> list[email.message.EmailMessage]:
        return [m for m, (_, rcpts) in zip(self.messages, self.envelopes, strict=True) if rcpt in rcpts]


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()
