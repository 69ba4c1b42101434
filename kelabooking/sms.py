"""SMS backends: the console for the embedded default, an HTTP JSON gateway for production, locmem for tests.

The gateway gets the message id as its idempotency key, so a message sent twice after a crash is delivered once.
A 4xx answer is a permanent failure (the message is marked failed); a 5xx answer or a timeout is retried.
"""

from __future__ import annotations

import logging
import sys
from typing import Protocol

import requests
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


class HttpGatewayBackend:
    """POSTs `{"id", "to", "from", "text"}` as JSON with a bearer token and an `Idempotency-Key` header."""

    def send(self, *, message_id: str, to: str, body: str) -> None:
        if not settings.SMS_GATEWAY_URL:
            raise SmsError("SMS_GATEWAY_URL is not set", permanent=True)
        try:
            response = requests.post(
                settings.SMS_GATEWAY_URL,
                json={"id": message_id, "to": to, "from": settings.SMS_SENDER, "text": body},
                headers={
                    "Authorization": f"Bearer {settings.SMS_GATEWAY_TOKEN}",
                    "Idempotency-Key": message_id,
                },
                timeout=settings.SMS_GATEWAY_TIMEOUT,
            )
        except requests.RequestException as error:
            raise SmsError(f"SMS gateway unreachable: {error.__class__.__name__}") from None
        if 400 <= response.status_code < 500:
            raise SmsError(
                f"SMS gateway refused the message: HTTP {response.status_code} {response.text[:200]}", permanent=True
            )
        if response.status_code >= 300:
            raise SmsError(f"SMS gateway failed: HTTP {response.status_code}")


def get_backend() -> SmsBackend:
    return import_string(settings.SMS_BACKEND)()
