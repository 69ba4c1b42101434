"""The registry administrators' group: exactly the permissions keeping the registry needs, kept in step on migrate."""

from __future__ import annotations

from typing import Any

REGISTRY_ADMIN_GROUP = "Registry administrators"

REGISTRY_ADMIN_PERMISSIONS = {
    ("registry", "organisation"): {"view", "add", "change"},  # no delete: organisations are deactivated
    ("registry", "registrationrequest"): {"view", "change"},  # change = approve / reject
    ("registry", "syncrun"): {"view"},
    ("kelabooking", "message"): {"view"},  # to see the decision message that was sent
}


def sync_registry_admin_group(**kwargs: Any) -> None:
    from django.contrib.auth.models import Group, Permission

    group, _created = Group.objects.get_or_create(name=REGISTRY_ADMIN_GROUP)
    wanted = []
    for (app_label, model), actions in REGISTRY_ADMIN_PERMISSIONS.items():
        codenames = [f"{action}_{model}" for action in actions]
        wanted += list(
            Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames).values_list(
                "pk", flat=True
            )
        )
    group.permissions.set(wanted)
