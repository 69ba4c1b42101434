from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SandboxConfig(AppConfig):
    """Installed only with SUOMIFI_SANDBOX, which the settings refuse with DEBUG off unless it is a public demo."""

    name = "partners.sandbox"
    label = "sandbox"
    verbose_name = _("Suomi.fi sandbox")
