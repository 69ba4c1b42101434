"""Reminders: the day before the call, by SMS and e-mail, at a decent hour, once."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction

from bookings.messages import HELSINKI, booking_messages_enqueue
from bookings.models import Booking
from kelabooking import clock

logger = logging.getLogger(__name__)


def reminder_window(*, now: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
    """The next local calendar day (Europe/Helsinki) as `[start, end)`, or None outside the hours reminders go out.

    Built from local dates, so a day of 23 or 25 hours (the DST changes) is still exactly one calendar day.
    """
    local = now.astimezone(HELSINKI)
    if not settings.REMINDER_SEND_FROM_HOUR <= local.hour < settings.REMINDER_SEND_UNTIL_HOUR:
        return None
    tomorrow = local.date() + dt.timedelta(days=1)
    start = dt.datetime.combine(tomorrow, dt.time(0), tzinfo=HELSINKI)
    end = dt.datetime.combine(tomorrow + dt.timedelta(days=1), dt.time(0), tzinfo=HELSINKI)
    return start, end


def bookings_remind(*, now: dt.datetime | None = None) -> int:
    """Remind every confirmed booking whose call is on the next local day; returns how many were reminded.

    Runs only between REMINDER_SEND_FROM_HOUR and REMINDER_SEND_UNTIL_HOUR local time. Each booking is reminded in
    its own transaction that sets `reminded_at` and queues the messages together, so one failure does not hold
    back the others, a second run finds nothing new, and a booking cancelled meanwhile is skipped.
    """
    now = now or clock.now()
    window = reminder_window(now=now)
    if window is None:
        return 0
    start, end = window
    due = Booking.objects.filter(
        status=Booking.Status.CONFIRMED, reminded_at__isnull=True, slot__starts_at__gte=start, slot__starts_at__lt=end
    ).order_by("slot__starts_at", "pk")
    reminded = 0
    for booking_id in due.values_list("pk", flat=True):
        try:
            reminded += booking_remind(booking_id=booking_id, now=now)
        except Exception:
            # The next run (ten minutes later) tries again: `reminded_at` was rolled back with the messages.
            logger.exception("Could not queue the reminder of booking %s", booking_id)
    return reminded


@transaction.atomic
def booking_remind(*, booking_id: int, now: dt.datetime | None = None) -> bool:
    """Mark one booking reminded and queue its reminder, unless it was cancelled or reminded meanwhile."""
    now = now or clock.now()
    booking = Booking.objects.select_for_update(of=("self",)).select_related("slot__service_line").get(pk=booking_id)
    if booking.status != Booking.Status.CONFIRMED or booking.reminded_at is not None or booking.slot.starts_at <= now:
        return False
    booking.reminded_at = now
    booking.save(update_fields=["reminded_at"])
    booking_messages_enqueue(booking=booking, kind=Booking.MessageKind.REMINDER)
    return True
