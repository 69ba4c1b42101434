"""System checks of staff sign-in (run by `manage.py check`, `migrate` and gunicorn's start)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.core.checks import Warning as CheckWarning

from kelabooking.permissions import GROUP_PERMISSIONS
from kelabooking.published import published_values_allowed
from partners.staff.oidc import CLIENT_AUTH_METHODS

HINT = 'docs/operations.md, "Staff sign-in".'


def check_staff_sign_in(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """partners.E101–E103, W101–W102: the staff client's settings hold together, and production says how staff sign in.

    - E101: STAFF_OIDC_GROUP_MAP maps a claim value to something that is no staff group (a typo grants nothing);
    - E102: an unknown client authentication method, or a secret method without a secret;
    - E103: STAFF_OIDC_MFA_AMR and STAFF_OIDC_MFA_ACR both empty: nobody could sign in;
    - W101: in production without staff sign-in, staff sign in with local passwords and no second factor;
    - W102: in production with staff sign-in but no break-glass account, nobody gets in while the provider is down.
    """
    problems: list[CheckMessage] = []
    for value, names in settings.STAFF_OIDC_GROUP_MAP.items():
        listed = [names] if isinstance(names, str) else names
        unknown = [name for name in listed if not isinstance(name, str) or name not in GROUP_PERMISSIONS]
        if not isinstance(listed, list) or unknown:
            problems.append(
                Error(
                    f"STAFF_OIDC_GROUP_MAP maps {value!r} to {unknown or names!r}, which is no staff group.",
                    hint=f"Map claim values to these groups only: {', '.join(sorted(GROUP_PERMISSIONS))}. {HINT}",
                    id="partners.E101",
                )
            )
    if settings.STAFF_OIDC_ENABLED:
        method = settings.STAFF_OIDC_RP_CLIENT_AUTH_METHOD
        if method not in CLIENT_AUTH_METHODS or (
            method != "private_key_jwt" and not settings.STAFF_OIDC_RP_CLIENT_SECRET
        ):
            problems.append(
                Error(
                    f"STAFF_OIDC_RP_CLIENT_AUTH_METHOD is {method!r}, which needs what is not set or is not supported.",
                    hint=f"One of {', '.join(CLIENT_AUTH_METHODS)}; the secret ones need STAFF_OIDC_RP_CLIENT_SECRET.",
                    id="partners.E102",
                )
            )
        if not settings.STAFF_OIDC_MFA_AMR and not settings.STAFF_OIDC_MFA_ACR:
            problems.append(
                Error(
                    "STAFF_OIDC_MFA_AMR and STAFF_OIDC_MFA_ACR are both empty: no sign-in can show MFA.",
                    hint=f"Name the amr or acr values your provider sends after MFA. {HINT}",
                    id="partners.E103",
                )
            )
    if published_values_allowed():
        return problems
    if not settings.STAFF_OIDC_ENABLED:
        problems.append(
            CheckWarning(
                "Staff sign-in through Kela's identity provider is not configured: FPA staff sign in to the admin "
                "with local passwords, without multi-factor authentication or groups from the directory.",
                hint=f"Set STAFF_OIDC_OP_ISSUER, STAFF_OIDC_RP_CLIENT_ID and the rest. {HINT}",
                id="partners.W101",
            )
        )
    elif not settings.STAFF_BREAK_GLASS_USERS:
        problems.append(
            CheckWarning(
                "No break-glass account (STAFF_BREAK_GLASS_USERS): while the identity provider is down nobody can "
                "sign in to the admin.",
                hint=f"List one or two sealed local accounts. {HINT}",
                id="partners.W102",
            )
        )
    return problems
