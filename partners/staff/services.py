"""The rules of staff sign-in: who is staff, in which groups, and what the audit trail keeps of it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from django.http import HttpRequest

from kelabooking import crypto
from kelabooking.permissions import GROUP_PERMISSIONS
from kelabooking.validators import has_control_characters
from partners.context import ActingContext, request_meta
from partners.models import AuditEvent, User
from partners.oidc import SuomiFiError
from partners.services import audit_event_record


class StaffRefusedError(SuomiFiError):
    """The provider identified the staff member, but they may not into the admin: `reason` (mfa_required,
    no_staff_group) for the audit trail and the page, `user` the account it concerns, when there is one."""

    def __init__(self, reason: str, *, user: User | None = None) -> None:
        super().__init__(reason)
        self.user = user


def claim_values(claims: dict[str, Any], name: str) -> list[str]:
    """A claim's values: a list of strings, or one string (some providers send a single group so)."""
    value = claims.get(name)
    values = value if isinstance(value, list) else [value]
    return [item for item in values if isinstance(item, str) and item and not has_control_characters(item)]


def mapped_groups(values: list[str]) -> set[str]:
    """The staff groups that the claim values map to (STAFF_OIDC_GROUP_MAP); values not in the map grant nothing,
    and neither does a mapping to a name that is no staff group."""
    groups: set[str] = set()
    for value in values:
        names = settings.STAFF_OIDC_GROUP_MAP.get(value, [])
        groups.update(name for name in ([names] if isinstance(names, str) else names) if name in GROUP_PERMISSIONS)
    return groups


def _first(claims: dict[str, Any], names: list[str]) -> str:
    """The first named claim that is text without a control character (a NUL, which PostgreSQL refuses)."""
    return next(
        (
            claims[name].strip()
            for name in names
            if isinstance(claims.get(name), str) and claims[name] and not has_control_characters(claims[name])
        ),
        "",
    )


def staff_user_by_subject(subject: str) -> User | None:
    return User.objects.filter(staff_subject=subject).first()


@transaction.atomic
def staff_user_sync(*, claims: dict[str, Any]) -> User | None:
    """The staff member the provider identified (by `sub`), their account made to match the provider at every
    sign-in: the groups exactly those that the groups claim maps to (a removed group is removed), `is_staff` when
    there is any, superuser only when the claim holds STAFF_OIDC_SUPERUSER_VALUE (never with that setting empty);
    names and e-mail as the provider has them. With no mapped group there is no admin: an existing account loses
    its groups and staff status, none is created, and None is returned."""
    subject = claims["sub"]
    values = claim_values(claims, settings.STAFF_OIDC_GROUPS_CLAIM)
    groups = mapped_groups(values)
    superuser = bool(settings.STAFF_OIDC_SUPERUSER_VALUE) and settings.STAFF_OIDC_SUPERUSER_VALUE in values
    user = User.objects.select_for_update().filter(staff_subject=subject).first()
    if not groups and not superuser:
        if user is not None:
            user.groups.clear()
            if user.is_staff or user.is_superuser:
                user.is_staff = user.is_superuser = False
                user.save(update_fields=["is_staff", "is_superuser"])
        return None
    if user is None:
        user = User(username=f"staff-{subject}"[:150], staff_subject=subject)
        user.set_unusable_password()
    user.first_name = _first(claims, settings.STAFF_OIDC_CLAIM_GIVEN_NAME)[:150] or user.first_name
    user.last_name = _first(claims, settings.STAFF_OIDC_CLAIM_FAMILY_NAME)[:150] or user.last_name
    user.email = _first(claims, settings.STAFF_OIDC_CLAIM_EMAIL)[:254] or user.email
    user.is_staff, user.is_superuser = True, superuser
    user.save()
    user.groups.set(Group.objects.filter(name__in=groups))
    return user


# --- The audit trail ------------------------------------------------------------------------------------------


def _acting(request: HttpRequest, user: User | None) -> ActingContext:
    return ActingContext(user=user, meta=request_meta(request))


def staff_sign_in_record(*, request: HttpRequest, user: User) -> AuditEvent:
    """A staff sign-in through the provider, with the groups it gave."""
    groups = sorted(user.groups.values_list("name", flat=True))
    return audit_event_record(
        acting=_acting(request, user),
        action=AuditEvent.Action.STAFF_LOGIN,
        details={"method": "oidc", "groups": groups, "superuser": user.is_superuser},
    )


def staff_sign_in_refused_record(*, request: HttpRequest, reason: str, user: User | None = None) -> AuditEvent:
    """A refused staff sign-in, with its reason code (and the account it concerned, when known)."""
    return audit_event_record(
        acting=_acting(request, user),
        action=AuditEvent.Action.STAFF_LOGIN_REFUSED,
        outcome=AuditEvent.Outcome.REFUSED,
        details={"reason": reason},
    )


def staff_break_glass_record(*, request: HttpRequest | None, user: User) -> AuditEvent:
    """A password sign-in by a break-glass account while staff sign-in is configured."""
    acting = ActingContext(user=user, meta=request_meta(request) if request is not None else ActingContext().meta)
    return audit_event_record(acting=acting, action=AuditEvent.Action.STAFF_BREAK_GLASS, details={"method": "password"})


def staff_sign_out_record(*, request: HttpRequest, user: User) -> AuditEvent:
    return audit_event_record(acting=_acting(request, user), action=AuditEvent.Action.STAFF_LOGOUT)


def staff_session_expired_record(*, request: HttpRequest, user: User, reason: str) -> AuditEvent:
    """A staff session ended by its idle (`idle`) or absolute (`absolute`) timeout."""
    return audit_event_record(
        acting=_acting(request, user), action=AuditEvent.Action.SESSION_EXPIRED, details={"reason": reason}
    )


def staff_customer_search_record(*, request: HttpRequest, user: User, identity_code: str) -> AuditEvent:
    """A staff member looked up who handled a customer (the admin's search by identity code): recorded on that
    customer, by the keyed index and never the code, so that the look-up shows in that customer's own trail too (also
    for a customer the retention job has removed, or nobody ever opened: then by the index alone). Linked to the
    customer's row where there is one, as every other event on them, so that key rotation re-indexes it."""
    customer_model = apps.get_model("bookings", "Customer")  # by name, as AuditEvent.customer names it
    customer = customer_model.objects.with_identity_code(identity_code).only("pk", "identity_code_digest").first()
    return audit_event_record(
        acting=_acting(request, user),
        action=AuditEvent.Action.STAFF_CUSTOMER_SEARCHED,
        customer=customer,
        customer_digest="" if customer is not None else crypto.digest(identity_code),
    )


def staff_call_list_record(*, request: HttpRequest, user: User, day: dt.date, bookings: int) -> AuditEvent:
    """A staff member exported a day's call list (customers' names, phones and matters)."""
    return audit_event_record(
        acting=_acting(request, user),
        action=AuditEvent.Action.STAFF_CALL_LIST_EXPORTED,
        details={"date": day.isoformat(), "bookings": bookings},
    )
