"""`manage.py load_demo`: demo data for the embedded default and a public demo site. Idempotent."""

from __future__ import annotations

import os

from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from bookings.demo import load_bookings_demo
from kelabooking.permissions import GROUP_PERMISSIONS
from kelabooking.published import DEMO_ADMIN_PASSWORD, DEMO_ADMIN_USERNAME, published_values_allowed
from partners.models import User
from registry.demo import load_registry_demo


class Command(BaseCommand):
    help = (
        "Load demo organisations, a pending registration request and a demo FPA admin (idempotent). Only with "
        "DEBUG=1 or SUOMIFI_SANDBOX_PUBLIC_DEMO=1."
    )

    @transaction.atomic
    def handle(self, *args: object, **options: object) -> None:
        if not published_values_allowed():
            raise CommandError(
                "Demo data is loaded only with DEBUG=1 or on a public demo site (SUOMIFI_SANDBOX_PUBLIC_DEMO=1): its "
                f"admin {DEMO_ADMIN_USERNAME!r}, whose name and default password are published, has every staff right."
            )
        load_registry_demo()
        load_bookings_demo()
        password = os.environ.get("DEMO_ADMIN_PASSWORD", DEMO_ADMIN_PASSWORD)
        admin, created = User.objects.get_or_create(
            username=DEMO_ADMIN_USERNAME,
            defaults={"first_name": "Demo", "last_name": "FPA-admin", "is_staff": True},
        )
        if created:
            admin.set_password(password)
            admin.save(update_fields=["password"])
        admin.groups.add(*Group.objects.filter(name__in=GROUP_PERMISSIONS))
        self.stdout.write(self.style.SUCCESS("Demo data loaded."))
        self.stdout.write(f"Admin: http://127.0.0.1:8000/admin/  user {DEMO_ADMIN_USERNAME}  password {password}")
