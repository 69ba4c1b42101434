from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BookingsConfig(AppConfig):
    name = "bookings"
    verbose_name = _("Bookings")

    def ready(self) -> None:
        # Importing the messages registers their renderer, which the worker calls before it sends one.
        from bookings.messages import booking_change_messages
        from bookings.services.changes import on_booking_changed

        # The customer is told of a booking change in the change's transaction.
        on_booking_changed(booking_change_messages)
