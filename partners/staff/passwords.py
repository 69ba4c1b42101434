"""Passwords in the admin: none in production once staff sign in through Kela's identity provider, but break-glass.

Whether passwords are restricted is one rule, `passwords_restricted()`: staff sign-in is configured and this is no
development or public demo site (DEBUG, SUOMIFI_SANDBOX_PUBLIC_DEMO: kelabooking/published.py), where the demo admin
signs in with its published password. Then only the accounts listed in STAFF_BREAK_GLASS_USERS may use a password,
for when the provider is out of reach, and each such sign-in is an audit event of its own, as is each wrong password
given for one. Every refused attempt costs one password hash, as Django's own backend does for an unknown username,
so the answer's time does not tell which usernames are break-glass accounts; the sign-in page limits the attempts
(`partners.staff.views.password_login_view`).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from kelabooking.published import published_values_allowed
from partners.models import User
from partners.staff.services import staff_break_glass_record, staff_sign_in_refused_record


def passwords_restricted() -> bool:
    return settings.STAFF_OIDC_ENABLED and not published_values_allowed()


def is_break_glass(username: str | None) -> bool:
    return bool(username) and username in settings.STAFF_BREAK_GLASS_USERS


class BreakGlassPasswordBackend(ModelBackend):
    """Django's password backend, refusing every account but the break-glass ones while passwords are restricted."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> User | None:
        restricted = passwords_restricted()
        if username is None:
            username = kwargs.get(User.USERNAME_FIELD)
        if restricted and not is_break_glass(username):
            if request is not None and password is not None:
                User().set_password(password)  # the time a break-glass account's check takes
                staff_sign_in_refused_record(request=request, reason="password_sign_in_disabled")
            return None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if restricted and user is not None:
            staff_break_glass_record(request=request, user=user)
        elif restricted and request is not None and password is not None:
            account = User.objects.filter(username=username).first()
            staff_sign_in_refused_record(request=request, reason="password_wrong", user=account)
        return user
