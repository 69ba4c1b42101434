"""The bookings' retention rules (kelabooking/retention.py; docs/data-protection.md, "Retention"): expired holds,
what was typed for a booking, and customers entered by partners."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q

from bookings.models import Booking, Customer
from kelabooking.models import RetentionRun
from kelabooking.retention import RetentionRule, cutoff

# What was typed for a booking, erased: the contact details, the matter's description and the reason for cancelling.
TYPED_ERASED = {"contact_phone": "", "contact_email": "", "description": "", "cancellation_reason": ""}


def expired_holds(run: RetentionRun) -> int:
    expired = Booking.objects.filter(status=Booking.Status.HELD, hold_expires_at__lte=run.started_at)
    if run.dry_run:
        return expired.count()
    with transaction.atomic():
        deleted, _by_model = expired.delete()
    return deleted


def contacts_erased(run: RetentionRun) -> int:
    """What was typed for bookings whose call was RETENTION_CONTACT_DAYS ago."""
    typed = Booking.objects.filter(slot__starts_at__lt=cutoff(run, "contact_days"), contact_erased_at=None).exclude(
        contact_phone="", contact_email="", description="", cancellation_reason=""
    )
    if run.dry_run:
        return typed.count()
    with transaction.atomic():
        return typed.update(**TYPED_ERASED, contact_erased_at=run.started_at)


def customers_removed(run: RetentionRun) -> int:
    """Customers entered by partners, created before the cutoff, whose every booking's call is before it too, who hold
    no time and whom no partner has opened since."""
    before = cutoff(run, "customer_days")
    recent = (
        Q(last_opened_at__gte=before)
        | Q(bookings__slot__starts_at__gte=before)
        | Q(bookings__status=Booking.Status.HELD)
    )
    stale = Customer.objects.filter(source=Customer.Source.ENTERED_BY_PARTNER, created_at__lt=before).exclude(recent)
    if run.dry_run:
        return stale.count()
    with transaction.atomic():
        ids = list(stale.select_for_update().values_list("pk", flat=True))
        # The bookings stay as statistics: without the customer, and without what was typed for them.
        Booking.objects.filter(customer_id__in=ids).update(
            customer=None, **TYPED_ERASED, contact_erased_at=run.started_at
        )
        # Their audit events stay (found by their own identity code index) and lose only the link: one of the changes
        # the append-only trail takes (partners/database.py).
        Customer.objects.filter(pk__in=ids).delete()
    return len(ids)


RETENTION_RULES = (
    RetentionRule("expired_holds", expired_holds, "expired holds", "removed"),
    RetentionRule("contacts_erased", contacts_erased, "bookings' typed contact details", "erased"),
    RetentionRule("customers_removed", customers_removed, "customers entered by partners", "removed"),
)
