"""SMS backends. The console backend serves the embedded default; the HTTP gateway comes with messaging."""

from __future__ import annotations

import logging
import sys
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


class SmsError(Exception):
    """Sending failed. `permanent` tells the outbox not to retry."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class SmsBackend(Protocol):
    def send(self, *, message_id: str, to: str, body: str) -> None: ...


class ConsoleBackend:
    def send(self, *, message_id: str, to: str, body: str) -> None:
        sys.stdout.write(f"--- SMS {message_id} to {to}\n{body}\n---\n")
        sys.stdout.flush()


class LocmemBackend:
    """Keeps sent messages in `outbox`, like Django's locmem e-mail backend (tests)."""

    outbox: list[dict[str, str]] = []

    def send(self, *, message_id: str, to: str, body: str) -> None:
        self.outbox.append({"message_id": message_id, "to": to, "body": body})


def get_backend() -> SmsBackend:
    return import_string(settings.SMS_BACKEND)()
