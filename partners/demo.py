"""The demo FPA admin: a staff user in every staff group, whose name and default password are published
(kelabooking/published.py), so it exists only with DEBUG or on a public demo site. Idempotent."""

from __future__ import annotations

import os

from django.contrib.auth.models import Group

from kelabooking.permissions import GROUP_PERMISSIONS
from kelabooking.published import DEMO_ADMIN_PASSWORD, DEMO_ADMIN_USERNAME
from partners.models import User


def load_partners_demo() -> str:
    password = os.environ.get("DEMO_ADMIN_PASSWORD", DEMO_ADMIN_PASSWORD)
    admin, created = User.objects.get_or_create(
        username=DEMO_ADMIN_USERNAME,
        defaults={"first_name": "Demo", "last_name": "FPA-admin", "is_staff": True},
    )
    if created:
        admin.set_password(password)
        admin.save(update_fields=["password"])
    admin.groups.add(*Group.objects.filter(name__in=GROUP_PERMISSIONS))
    return f"Admin: http://127.0.0.1:8000/admin/  user {DEMO_ADMIN_USERNAME}  password {password}"
