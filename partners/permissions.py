"""The partners app's staff groups (kelabooking/permissions.py; docs/staff.md, "Staff groups and their rights")."""

from __future__ import annotations

from kelabooking.permissions import Rights

AUDIT_READER_GROUP = "Audit readers"
SERVICE_ADMIN_GROUP = "Partner service administrators"

STAFF_GROUPS: dict[str, Rights] = {
    AUDIT_READER_GROUP: {
        ("partners", "auditevent"): {"view"},  # append-only: nobody may change or delete
        ("kelabooking", "retentionrun"): {"view"},  # what the retention job removed, and when
    },
    SERVICE_ADMIN_GROUP: {
        ("partners", "notice"): {"view", "add", "change", "delete"},
    },
}
