from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BookingsConfig(AppConfig):
    name = "bookings"
    verbose_name = _("Bookings")

    def ready(self) -> None:
        # Registers the renderer of the booking messages, which the worker calls before it sends one.
        from bookings import messages  # noqa: F401
