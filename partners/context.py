"""The acting context: who acts, for which organisation, whether they accepted the terms, and the one customer.

It lives in the server-side session only (never in URLs). The steps come in a fixed order:
authenticated → organisation chosen → terms accepted → customer locked. Each partner view declares the step
it needs with `@requires_step`; a view reached too early redirects to the page of the missing step.

`acting_context(request)` turns the session into a value, `ActingContext`, that the services take: they check what
they need of it (the organisation may still book, the customer is the locked one, the hold is this partner's) and
write their audit events with its request metadata. A service that refuses the context raises `ActingRefusedError`,
which `requires_step` answers with the refusal page.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.sessions.exceptions import SessionInterrupted
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from kelabooking import clock, crypto
from kelabooking.ratelimit import client_address

if TYPE_CHECKING:
    from partners.models import User

SESSION_KEY = "acting"
# What the partner has chosen so far for a booking (the matter, the contact details): part of the acting state, so
# that it goes with the organisation and the customer it was typed for. Read and written through `booking_draft`
# and `booking_draft_save` alone: the session holds it encrypted.
DRAFT_KEY = "booking_draft"


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
    """The session already belongs to a customer: log out and in again to switch."""

    message = _("You are already handling another customer. Log out and log in again to handle a new customer.")


class ActingRefusedError(Exception):
    """A service refused the acting context (e.g. the organisation left the registry meanwhile). `reason` picks the
    refusal page's text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RequestMeta:
    """What the audit trail keeps of the request a change came in."""

    request_id: str = ""
    ip_address: str | None = None


@dataclass(frozen=True)
class ActingContext:
    """Who acts and for what, as a value the services take. `user` is the signed-in user (a partner, or FPA staff in
    the admin); the rest is the partner's session."""

    user: User | None = None
    organisation_business_id: str = ""
    organisation_name: str = ""
    terms_accepted_at: str = ""
    customer_id: int | None = None
    meta: RequestMeta = field(default_factory=RequestMeta)

    @property
    def authenticated(self) -> bool:
        """A partner signed in through Suomi.fi (staff users are not partners)."""
        return self.user is not None and bool(getattr(self.user, "identity_code", None))

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


def request_meta(request: HttpRequest) -> RequestMeta:
    return RequestMeta(request_id=getattr(request, "request_id", ""), ip_address=client_address(request) or None)


def acting_context(request: HttpRequest) -> ActingContext:
    user = getattr(request, "user", None)
    user = user if user is not None and user.is_authenticated else None
    meta = request_meta(request)
    if user is None or not getattr(user, "identity_code", None):
        return ActingContext(user=user, meta=meta)
    stored = request.session.get(SESSION_KEY, {})
    return ActingContext(
        user=user,
        organisation_business_id=stored.get("organisation_business_id", ""),
        organisation_name=stored.get("organisation_name", ""),
        terms_accepted_at=stored.get("terms_accepted_at", ""),
        customer_id=stored.get("customer_id"),
        meta=meta,
    )


def _update(request: HttpRequest, **values: Any) -> None:
    stored = dict(request.session.get(SESSION_KEY, {}))
    stored.update(values)
    request.session[SESSION_KEY] = stored


def booking_draft(request: HttpRequest) -> dict[str, Any]:
    """What the partner has chosen and typed so far for a booking. A draft that cannot be read (written under an
    encryption key since retired) is no draft: the partner starts the booking again."""
    stored = request.session.get(DRAFT_KEY)
    if not isinstance(stored, str):
        return {}
    try:
        return json.loads(crypto.decrypt(stored))
    except crypto.IdentityCodeKeyError:
        return {}


def booking_draft_save(request: HttpRequest, **values: Any) -> dict[str, Any]:
    """Add `values` to the draft; a new draft records when it was begun (`started`: the booking it leads to is
    confirmed after that). It holds what was typed for the customer (phone, e-mail, description, names), so the
    session row keeps it encrypted, like the ID token (kelabooking/crypto.py): never in clear at rest."""
    draft = {"started": clock.now().isoformat(), **booking_draft(request), **values}
    request.session[DRAFT_KEY] = crypto.encrypt(json.dumps(draft))
    return draft


def booking_draft_started(draft: dict[str, Any]) -> dt.datetime | None:
    """When the draft was begun, or None for a draft without a readable time."""
    try:
        return dt.datetime.fromisoformat(draft["started"])
    except (KeyError, TypeError, ValueError):
        return None


def booking_draft_drop(request: HttpRequest) -> None:
    request.session.pop(DRAFT_KEY, None)


def start_over(request: HttpRequest) -> None:
    """A new identification: nothing of an earlier login's organisation, terms, customer or draft is kept."""
    request.session.pop(SESSION_KEY, None)
    booking_draft_drop(request)


def choose_organisation(request: HttpRequest, *, business_id: str, name: str) -> None:
    """A new organisation choice starts the terms over and drops the draft. Once a customer is locked the
    organisation is part of that customer's handling: only a new identification changes it."""
    if acting_context(request).step >= Step.CUSTOMER_LOCKED:
        raise CustomerLockedError
    booking_draft_drop(request)
    _update(request, organisation_business_id=business_id, organisation_name=name, terms_accepted_at="")


def accept_terms(request: HttpRequest) -> None:
    if acting_context(request).step < Step.ORGANISATION_CHOSEN:
        raise PermissionError("an organisation must be chosen before the terms are accepted")
    if not request.session.get(SESSION_KEY, {}).get("terms_accepted_at"):
        _update(request, terms_accepted_at=clock.now().isoformat())


@contextmanager
def customer_step(request: HttpRequest) -> Iterator[None]:
    """The customer step's POST (bookings.views.customer_view), as one transaction: the partner's row locked first,
    the acting context taken as the session stores it now, and the session saved before the lock is let go. Two tabs
    posting two customers at once so run one after the other, and the second sees the customer the first locked
    rather than its own copy of the session read before: it is refused (DESIGN.md §4 rule 6), and what it did
    meanwhile is rolled back."""
    from partners.models import User

    with transaction.atomic():
        User.objects.lock(request.user.pk)
        key = request.session.session_key
        stored = type(request.session)(session_key=key).load() if key else {}
        if key and not stored:  # signed out (or in again) in another tab meanwhile: as Django's middleware answers
            raise SessionInterrupted("The session was deleted before the customer step finished.")
        if SESSION_KEY in stored:
            request.session[SESSION_KEY] = stored[SESSION_KEY]
        yield
        request.session.save()
        request.session.modified = False  # saved: the middleware need not write it again


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


def refusal(request: HttpRequest, reason: str) -> HttpResponse:
    """The translated page for a refused acting context (partners/refusal.html)."""
    acting = acting_context(request)
    chosen = {"name": acting.organisation_name, "business_id": acting.organisation_business_id}
    return render(request, "partners/refusal.html", {"reason": reason, "chosen": chosen}, status=403)


def requires_step(step: Step, *, before: Step | None = None) -> Callable:
    """Let the view run only when the session has reached `step` (and, with `before`, not yet reached that step);
    otherwise send the partner to the missing step, or to the customer's page (a form of an earlier step, the
    organisation's choice say, with the reason). A service's `ActingRefusedError` becomes the refusal page."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            reached = acting_context(request).step
            if reached < step:
                return redirect_to_step(request, Step(reached + 1))
            if before is not None and reached >= before:
                if request.method == "POST":  # an earlier step's form, sent again: say why nothing was done
                    messages.error(request, CustomerLockedError.message)
                return redirect("bookings:overview")
            try:
                return view(request, *args, **kwargs)
            except ActingRefusedError as error:
                return refusal(request, error.reason)

        wrapped.required_step = step
        return wrapped

    return decorator
