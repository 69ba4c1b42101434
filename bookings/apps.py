from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BookingsConfig(AppConfig):
    name = "bookings"
    verbose_name = _("Bookings")

    def ready(self) -> None:
        from bookings.demo import load_bookings_demo
        from bookings.messages import booking_change_messages, booking_message_render
        from bookings.metrics import SlotUtilisationCollector, booking_change_count
        from bookings.models import Booking
        from bookings.permissions import STAFF_GROUPS
        from bookings.retention import RETENTION_RULES
        from bookings.services.changes import on_booking_changed
        from kelabooking.demo import demo_loader_register
        from kelabooking.message_kinds import message_kinds_register
        from kelabooking.metrics import scrape_collector_register
        from kelabooking.permissions import staff_group_register
        from kelabooking.retention import retention_rule_register

        # What the customer is told, queued without its texts: the worker renders them before the first send.
        message_kinds_register(
            Booking.MessageKind.choices, readers="bookings.view_booking", render=booking_message_render
        )
        # The customer is told of a booking change in the change's transaction.
        on_booking_changed(booking_change_messages)
        # Counted for the metrics when the change commits; how full the next days are, computed at scrape time.
        on_booking_changed(booking_change_count)
        scrape_collector_register(SlotUtilisationCollector())
        for rule in RETENTION_RULES:
            retention_rule_register(rule)
        for name, rights in STAFF_GROUPS.items():
            staff_group_register(name, rights)
        demo_loader_register(load_bookings_demo)
