"""The registry's staff group (kelabooking/permissions.py; docs/staff.md, "Staff groups and their rights")."""

from __future__ import annotations

from kelabooking.permissions import Rights

REGISTRY_ADMIN_GROUP = "Registry administrators"

STAFF_GROUPS: dict[str, Rights] = {
    REGISTRY_ADMIN_GROUP: {
        ("registry", "organisation"): {"view", "add", "change"},  # no delete: organisations are deactivated
        ("registry", "registrationrequest"): {"view", "change"},  # change = approve / reject
        ("registry", "syncrun"): {"view"},
        ("kelabooking", "message"): {"view"},  # the decision messages only (their readers' permission); no resend
    },
}
