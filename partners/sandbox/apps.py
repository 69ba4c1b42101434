from __future__ import annotations

from django.apps import AppConfig
from django.core import checks
from django.utils.translation import gettext_lazy as _


class SandboxConfig(AppConfig):
    name = "partners.sandbox"
    label = "sandbox"
    verbose_name = _("Suomi.fi sandbox")

    def ready(self) -> None:
        from partners.sandbox.checks import check_sandbox_not_in_production

        checks.register(check_sandbox_not_in_production, checks.Tags.security)
