"""What the admin's login page offers: the sign-in through Kela's identity provider, and the password form only
where passwords still count (partners/staff/passwords.py) or for a break-glass sign-in (`?break-glass=1`)."""

from __future__ import annotations

from django import template
from django.conf import settings
from django.http import HttpRequest

from partners.staff.passwords import passwords_restricted

register = template.Library()

BREAK_GLASS_PARAMETER = "break-glass"


@register.simple_tag
def staff_sign_in(request: HttpRequest) -> dict[str, bool]:
    return {
        "enabled": settings.STAFF_OIDC_ENABLED,
        "passwords_shown": not passwords_restricted() or request.GET.get(BREAK_GLASS_PARAMETER) == "1",
        "session_expired": request.GET.get("session-expired") == "1",
    }
