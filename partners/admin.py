from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from partners.models import User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    pass
