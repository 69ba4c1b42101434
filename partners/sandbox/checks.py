"""The sandbox signs anyone in as anyone: it must never run in production by accident."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error


def check_sandbox_not_in_production(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """sandbox.E001: the sandbox is installed with DEBUG off, and this is not declared a public demo."""
    if settings.DEBUG or settings.SUOMIFI_SANDBOX_PUBLIC_DEMO:
        return []
    return [
        Error(
            "The Suomi.fi sandbox (partners.sandbox) is installed while DEBUG is off.",
            hint=(
                "Turn SUOMIFI_SANDBOX off in production. For a public demonstration site that should sign people in "
                "with test identities, set SUOMIFI_SANDBOX_PUBLIC_DEMO=1."
            ),
            id="sandbox.E001",
        )
    ]
