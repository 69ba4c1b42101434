"""`manage.py load_demo`: demo data for the embedded default and a public demo site. Idempotent."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from kelabooking.demo import demo_loaders
from kelabooking.published import DEMO_ADMIN_USERNAME, published_values_allowed


class Command(BaseCommand):
    help = (
        "Load demo organisations, a pending registration request, capacity, customers and bookings, and a demo FPA "
        "admin (idempotent). Only with DEBUG=1 or SUOMIFI_SANDBOX_PUBLIC_DEMO=1."
    )

    @transaction.atomic
    def handle(self, *args: object, **options: object) -> None:
        if not published_values_allowed():
            raise CommandError(
                "Demo data is loaded only with DEBUG=1 or on a public demo site (SUOMIFI_SANDBOX_PUBLIC_DEMO=1): its "
                f"admin {DEMO_ADMIN_USERNAME!r}, whose name and default password are published, has every staff right."
            )
        notes = [note for load in demo_loaders() if (note := load())]
        self.stdout.write(self.style.SUCCESS("Demo data loaded."))
        for note in notes:
            self.stdout.write(note)
