"""The acting context: who the partner acts for, whether they accepted the terms, and the one customer.

It lives in the server-side session only (never in URLs). The steps come in a fixed order:
authenticated → organisation chosen → terms accepted → customer locked. Each partner view declares the step
it needs with `@requires_step`; a view reached too early redirects to the page of the missing step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from kelabooking import clock

SESSION_KEY = "acting"


class Step(IntEnum):
    ANONYMOUS = 0
    AUTHENTICATED = 1
    ORGANISATION_CHOSEN = 2
    TERMS_ACCEPTED = 3
    CUSTOMER_LOCKED = 4


# Where a partner goes to take the step that is missing.
STEP_PAGES = {
    Step.AUTHENTICATED: "partners:login",
    Step.ORGANISATION_CHOSEN: "partners:work",
    Step.TERMS_ACCEPTED: "partners:terms",
    Step.CUSTOMER_LOCKED: "bookings:customer",
}


class CustomerLockedError(Exception):
    """The session already belongs to another customer: log out and in again to switch."""

    message = _("You are already handling another customer. Log out and log in again to handle a new customer.")


@dataclass(frozen=True)
class ActingContext:
    authenticated: bool
    organisation_business_id: str = ""
    organisation_name: str = ""
    terms_accepted_at: str = ""
    customer_id: int | None = None

    @property
    def step(self) -> Step:
        if not self.authenticated:
            return Step.ANONYMOUS
        if not self.organisation_business_id:
            return Step.AUTHENTICATED
        if not self.terms_accepted_at:
            return Step.ORGANISATION_CHOSEN
        if self.customer_id is None:
            return Step.TERMS_ACCEPTED
        return Step.CUSTOMER_LOCKED


def _is_partner(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user and user.is_authenticated and getattr(user, "identity_code", None))


def acting_context(request: HttpRequest) -> ActingContext:
    stored = request.session.get(SESSION_KEY, {}) if _is_partner(request) else {}
    return ActingContext(
        authenticated=_is_partner(request),
        organisation_business_id=stored.get("organisation_business_id", ""),
        organisation_name=stored.get("organisation_name", ""),
        terms_accepted_at=stored.get("terms_accepted_at", ""),
        customer_id=stored.get("customer_id"),
    )


def _update(request: HttpRequest, **values: Any) -> None:
    stored = dict(request.session.get(SESSION_KEY, {}))
    stored.update(values)
    request.session[SESSION_KEY] = stored


def choose_organisation(request: HttpRequest, *, business_id: str, name: str) -> None:
    """A new organisation choice starts the later steps over."""
    _update(
        request,
        organisation_business_id=business_id,
        organisation_name=name,
        terms_accepted_at="",
        customer_id=None,
    )


def accept_terms(request: HttpRequest) -> None:
    _update(request, terms_accepted_at=clock.now().isoformat())


def lock_customer(request: HttpRequest, customer: Any) -> None:
    """Bind the session to one customer; a second, different customer is refused (DESIGN.md §4 rule 6)."""
    context = acting_context(request)
    if context.step < Step.TERMS_ACCEPTED:
        raise PermissionError("the terms must be accepted before a customer is chosen")
    if context.customer_id is not None and context.customer_id != customer.pk:
        raise CustomerLockedError
    _update(request, customer_id=customer.pk)


def redirect_to_step(request: HttpRequest, step: Step) -> HttpResponse:
    url = reverse(STEP_PAGES[step])
    if getattr(request, "htmx", False):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


def requires_step(step: Step) -> Callable:
    """Let the view run only when the session has reached `step`; otherwise send the partner to the missing step."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            reached = acting_context(request).step
            if reached < step:
                return redirect_to_step(request, Step(reached + 1))
            return view(request, *args, **kwargs)

        wrapped.required_step = step
        return wrapped

    return decorator
