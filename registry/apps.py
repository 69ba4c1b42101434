from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = _("Organisation registry")

    def ready(self) -> None:
        from registry.permissions import sync_registry_admin_group

        post_migrate.connect(sync_registry_admin_group, sender=self)
