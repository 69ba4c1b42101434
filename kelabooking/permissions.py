"""FPA staff groups: each with exactly the permissions its work needs, kept in step on every migrate."""

from __future__ import annotations

from typing import Any

REGISTRY_ADMIN_GROUP = "Registry administrators"
AUDIT_READER_GROUP = "Audit readers"
SERVICE_ADMIN_GROUP = "Partner service administrators"
CAPACITY_ADMIN_GROUP = "Phone service capacity administrators"

GROUP_PERMISSIONS: dict[str, dict[tuple[str, str], set[str]]] = {
    REGISTRY_ADMIN_GROUP: {
        ("registry", "organisation"): {"view", "add", "change"},  # no delete: organisations are deactivated
        ("registry", "registrationrequest"): {"view", "change"},  # change = approve / reject
        ("registry", "syncrun"): {"view"},
        ("kelabooking", "message"): {"view"},  # to see the decision message that was sent
    },
    AUDIT_READER_GROUP: {
        ("partners", "auditevent"): {"view"},  # append-only: nobody may change or delete
    },
    SERVICE_ADMIN_GROUP: {
        ("partners", "notice"): {"view", "add", "change", "delete"},
    },
    CAPACITY_ADMIN_GROUP: {
        ("bookings", "serviceline"): {"view", "add", "change", "delete"},
        ("bookings", "openingrule"): {"view", "add", "change", "delete"},
        ("bookings", "closedday"): {"view", "add", "change", "delete"},
        ("bookings", "slot"): {"view", "add", "change", "delete"},
        ("bookings", "booking"): {"view", "change"},  # change = the cancel action; bookings are otherwise read-only
        ("bookings", "customer"): {"view"},
    },
}


def sync_staff_groups(**kwargs: Any) -> None:
    from django.contrib.auth.models import Group, Permission

    for name, permissions in GROUP_PERMISSIONS.items():
        group, _created = Group.objects.get_or_create(name=name)
        wanted = []
        for (app_label, model), actions in permissions.items():
            codenames = [f"{action}_{model}" for action in actions]
            wanted += list(
                Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames).values_list(
                    "pk", flat=True
                )
            )
        group.permissions.set(wanted)
