"""FPA staff groups: each with exactly the permissions its work needs, kept in step on every migrate.

README.md, "Staff groups and their rights", lists them; keep it in step (tests/kelabooking/test_admin_groups.py).
"""

from __future__ import annotations

from typing import Any

from kelabooking.models import Message

REGISTRY_ADMIN_GROUP = "Registry administrators"
AUDIT_READER_GROUP = "Audit readers"
SERVICE_ADMIN_GROUP = "Partner service administrators"
CAPACITY_ADMIN_GROUP = "Phone service capacity administrators"
CUSTOMER_SERVICE_GROUP = "Phone service customer service"

GROUP_PERMISSIONS: dict[str, dict[tuple[str, str], set[str]]] = {
    REGISTRY_ADMIN_GROUP: {
        ("registry", "organisation"): {"view", "add", "change"},  # no delete: organisations are deactivated
        ("registry", "registrationrequest"): {"view", "change"},  # change = approve / reject
        ("registry", "syncrun"): {"view"},
        ("kelabooking", "message"): {"view"},  # the decision messages only (MESSAGE_KINDS_BY_PERMISSION); no resend
    },
    AUDIT_READER_GROUP: {
        ("partners", "auditevent"): {"view"},  # append-only: nobody may change or delete
        ("kelabooking", "retentionrun"): {"view"},  # what the retention job removed, and when
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
    # The customers' booking messages: to check what a customer was sent, and to resend what failed.
    CUSTOMER_SERVICE_GROUP: {
        ("bookings", "booking"): {"view"},  # which booking a message is about; booking messages need it
        ("kelabooking", "message"): {"view", "change"},  # change = the Resend action; messages are otherwise read-only
    },
}

# Who reads which messages in the outbox (MessageAdmin): a message of these kinds only for whoever holds the permission
# to see what it is about. The recipients are customers' phone numbers and e-mail addresses (some with non-disclosure)
# and organisations' contact persons. A kind in neither set is shown to superusers only.
MESSAGE_KINDS_BY_PERMISSION: dict[str, frozenset[str]] = {
    "registry.view_registrationrequest": frozenset({Message.Kind.REGISTRY_DECISION}),
    "bookings.view_booking": frozenset(
        {Message.Kind.CONFIRMATION, Message.Kind.CANCELLATION, Message.Kind.CHANGE, Message.Kind.REMINDER}
    ),
}


def message_kinds_for(user: Any) -> set[str]:
    """The kinds of message `user` may read in the outbox: every kind for an active superuser."""
    if user.is_active and user.is_superuser:
        return set(Message.Kind.values)
    return {
        kind for permission, kinds in MESSAGE_KINDS_BY_PERMISSION.items() if user.has_perm(permission) for kind in kinds
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
