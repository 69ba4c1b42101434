from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PartnersConfig(AppConfig):
    name = "partners"
    verbose_name = _("Partners")

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from kelabooking.database import restrict_app_role
        from partners.database import audit_retention_set, audit_trail_restrictions

        restrict_app_role(audit_trail_restrictions)
        post_migrate.connect(audit_retention_set, sender=self, dispatch_uid="partners.audit_retention_set")
