"""The bookings app's metrics (kelabooking/metrics.py): booking changes as they commit, refusals by the rule that
refused, and, computed at scrape time, how full the next 7 days are per service line."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Count, Sum
from prometheus_client.core import GaugeMetricFamily, Metric

from kelabooking import clock, metrics

if TYPE_CHECKING:
    from bookings.models import Booking
    from bookings.services.changes import BookingChange

BOOKING_CHANGES = metrics.counter(
    "booking_changes_total", "Booking changes committed: held, confirmed, moved, cancelled, reminded.", ["change"]
)
BOOKING_REFUSALS = metrics.counter(
    "booking_refusals_total",
    "Booking changes a rule refused, by action (hold, confirm, move, cancel) and reason (slot_full, hold_changed, "
    "matter_booked, time_booked, not_bookable, not_changeable, not_saved, phone_missing, customer_locked, and the "
    "acting context's: step_missing, not_in_registry).",
    ["action", "reason"],
)

UTILISATION_DAYS = 7


def booking_change_count(*, booking: Booking, change: BookingChange) -> None:
    """A `booking_changed` consumer (bookings/apps.py): counted when the change commits, never for one rolled back."""
    transaction.on_commit(BOOKING_CHANGES.labels(str(change)).inc)


class SlotUtilisationCollector:
    """Capacity and the places taken (confirmed bookings and unexpired holds) in the slots of the next 7 days, per
    service line: two grouped queries over those days' slots."""

    def collect(self) -> Iterable[Metric]:
        from bookings.models import Booking, Slot

        now = clock.now()
        window = {"starts_at__gte": now, "starts_at__lt": now + dt.timedelta(days=UTILISATION_DAYS)}
        capacity = {
            row["service_line__name_en"]: row["places"]
            for row in Slot.objects.filter(**window)
            .order_by()
            .values("service_line__name_en")
            .annotate(places=Sum("capacity"))
        }
        taken = {
            row["slot__service_line__name_en"]: row["taken"]
            for row in Booking.objects.taking_capacity(now=now)
            .filter(**{f"slot__{lookup}": value for lookup, value in window.items()})
            .order_by()
            .values("slot__service_line__name_en")
            .annotate(taken=Count("pk"))
        }
        families = {
            "capacity": GaugeMetricFamily(
                f"{metrics.PREFIX}slot_capacity_next_7_days",
                "Places in the slots of the next 7 days, per service line.",
                labels=["service_line"],
            ),
            "taken": GaugeMetricFamily(
                f"{metrics.PREFIX}slot_places_taken_next_7_days",
                "Places taken (confirmed bookings and unexpired holds) in the slots of the next 7 days.",
                labels=["service_line"],
            ),
            "ratio": GaugeMetricFamily(
                f"{metrics.PREFIX}slot_utilisation_ratio_next_7_days",
                "Places taken / places in the slots of the next 7 days, per service line (0 without places).",
                labels=["service_line"],
            ),
        }
        for line, places in sorted(capacity.items()):
            places = places or 0
            used = taken.get(line, 0)
            families["capacity"].add_metric([line], places)
            families["taken"].add_metric([line], used)
            families["ratio"].add_metric([line], used / places if places else 0)
        yield from families.values()
