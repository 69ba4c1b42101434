from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = _("Organisation registry")

    def ready(self) -> None:
        from kelabooking.demo import demo_loader_register
        from kelabooking.message_kinds import message_kinds_register
        from kelabooking.permissions import staff_group_register
        from registry.demo import load_registry_demo
        from registry.models import RegistrationRequest
        from registry.permissions import STAFF_GROUPS

        # The decision told to the contact person, written when it is queued; read by whoever decides requests.
        message_kinds_register(RegistrationRequest.MessageKind.choices, readers="registry.view_registrationrequest")
        for name, rights in STAFF_GROUPS.items():
            staff_group_register(name, rights)
        demo_loader_register(load_registry_demo)
