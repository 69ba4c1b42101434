"""A partner's acting state, built by the acting context's own steps (partners/context.py), for the tests and the
benchmarks (bench/) alike: nothing here knows how the session stores it.

- `sign_in(client, partner, ...)`: the test client signed in as `partner`, who has then taken the steps asked for;
- `signed_in_session(partner, ...)`: the same session's data, for a server in another process (gunicorn in the fault
  drills and the benchmarks) to be handed in a database session row;
- `acting_for(partner, ...)`: the `ActingContext` the views hand the services after those steps;
- `acting_of(client)`: the acting context of the client's session, read as the views read it.

The steps, each taken only when asked for: the organisation chosen (`organisation`), the terms accepted (`terms`,
after an organisation), the customer locked (`customer`, after the terms) and the booking draft saved (`draft`).
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any

from django.conf import settings
from django.contrib import auth
from django.contrib.sessions.backends.signed_cookies import SessionStore as InMemorySession
from django.http import HttpRequest
from django.test import Client

from partners import context
from partners.middleware import LAST_SEEN, LOGIN_AT


def partner_request(
    session: MutableMapping[str, Any], partner: Any, *, request_id: str = "", ip_address: str | None = "127.0.0.1"
) -> HttpRequest:
    """A request of `partner` in `session`: what the context's functions read and write."""
    request = HttpRequest()
    request.session = session
    request.user = partner
    request.request_id = request_id
    if ip_address:
        request.META["REMOTE_ADDR"] = ip_address
    return request


def take_steps(
    request: HttpRequest,
    *,
    organisation: Any = None,
    terms: bool = True,
    customer: Any = None,
    draft: dict[str, Any] | None = None,
) -> context.ActingContext:
    """Take the steps asked for, in their order, through the context's own functions; the acting context after them.
    `organisation` is anything with a `business_id` and a `name` (the registry is not asked)."""
    if organisation is not None:
        context.choose_organisation(request, business_id=organisation.business_id, name=organisation.name)
        if terms:
            context.accept_terms(request)
    if customer is not None:
        context.lock_customer(request, customer)
    if draft is not None:
        context.booking_draft_save(request, **draft)
    return context.acting_context(request)


def _signed_in(request: HttpRequest) -> None:
    """What the Suomi.fi sign-in leaves besides the login itself (partners/views.py): a new identification starts the
    acting context over, and the session timeouts start now."""
    context.start_over(request)
    now = time.time()
    request.session[LOGIN_AT] = now
    request.session[LAST_SEEN] = now


def sign_in(client: Client, partner: Any, **steps: Any) -> context.ActingContext:
    """Sign `partner` in on the test client, then take `steps` (see `take_steps`): a new identification, under a new
    session key as the Suomi.fi callback gives it (partners/views.py)."""
    if settings.SESSION_COOKIE_NAME in client.cookies:
        client.logout()
    client.force_login(partner)
    session = client.session
    request = partner_request(session, partner)
    _signed_in(request)
    acting = take_steps(request, **steps)
    session.save()
    return acting


def signed_in_session(partner: Any, **steps: Any) -> dict[str, Any]:
    """The data of a session in which `partner` signed in and then took `steps`: Django's login, as it writes it, in
    a session that is kept in memory (store it with `SessionStore().update(...)`, or encode it for bulk loading)."""
    request = partner_request(InMemorySession(), partner)
    auth.login(request, partner, backend=settings.AUTHENTICATION_BACKENDS[0])
    _signed_in(request)
    take_steps(request, **steps)
    return dict(request.session.items())


def acting_for(
    partner: Any,
    *,
    organisation: Any,
    customer: Any = None,
    request_id: str = "",
    ip_address: str | None = "127.0.0.1",
) -> context.ActingContext:
    """The acting context the views hand the services for `partner` past the terms, acting for `organisation`, with
    `customer` locked when given."""
    request = partner_request({}, partner, request_id=request_id, ip_address=ip_address)
    return take_steps(request, organisation=organisation, customer=customer)


def acting_of(client: Client) -> context.ActingContext:
    """The acting context of the test client's session, as a view reads it."""
    request = partner_request(client.session, None)
    request.user = auth.get_user(request)
    return context.acting_context(request)
