"""The phone service's staff groups (kelabooking/permissions.py; docs/staff.md, "Staff groups and their rights")."""

from __future__ import annotations

from kelabooking.permissions import Rights

CAPACITY_ADMIN_GROUP = "Phone service capacity administrators"
CUSTOMER_SERVICE_GROUP = "Phone service customer service"

STAFF_GROUPS: dict[str, Rights] = {
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
