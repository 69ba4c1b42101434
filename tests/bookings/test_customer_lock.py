"""One customer per identification, also when two tabs post two customers at once (partners/context.py
`customer_step`): the second to get the partner's lock sees the customer the first locked and is refused."""

from __future__ import annotations

import threading

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client

from bookings import views
from partners import context
from partners.middleware import LAST_SEEN
from tests.acting import sign_in
from tests.bookings.test_journey import CUSTOMER_CODE, NEW_CODE, url
from tests.bookings.test_journey import customer as customer  # noqa: F401 - fixtures
from tests.bookings.test_journey import line as line  # noqa: F401
from tests.bookings.test_journey import organisation as organisation  # noqa: F401
from tests.factories import UserFactory
from tests.partners.provider import TEST_CODE

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]  # row locks between connections


def test_customer_step__two_tabs_post_two_customers_at_once__one_locked_the_other_refused(
    client, organisation, customer, monkeypatch
) -> None:
    partner = UserFactory(identity_code=TEST_CODE, first_name="Helena", last_name="Virtanen")
    sign_in(client, partner, organisation=organisation)
    other_tab = Client()
    other_tab.cookies = client.cookies
    find, acting_context = views.customer_find_or_create, context.acting_context
    under_way, read_before = threading.Event(), threading.Event()

    def slow_for_the_new_customer(*, acting, identity_code):
        found = find(acting=acting, identity_code=identity_code)
        if identity_code == NEW_CODE:
            under_way.set()  # the first tab's step holds the partner's lock: the second tab posts now
            assert read_before.wait(10)  # and has read its session (no customer yet) before this one commits
        return found

    def read_by_the_second_tab(request):
        if threading.current_thread() is second:
            read_before.set()
        return acting_context(request)

    monkeypatch.setattr(views, "customer_find_or_create", slow_for_the_new_customer)
    monkeypatch.setattr(context, "acting_context", read_by_the_second_tab)  # what the step check reads first
    answers = {}

    def post(tab: Client, code: str) -> None:
        try:
            answers[code] = tab.post(url("bookings:customer"), {"identity_code": code})
        finally:
            connection.close()

    first = threading.Thread(target=post, args=(other_tab, NEW_CODE))
    second = threading.Thread(target=post, args=(client, CUSTOMER_CODE))
    first.start()
    assert under_way.wait(10)
    second.start()
    first.join(10)
    second.join(10)

    assert answers[NEW_CODE]["Location"] == url("bookings:overview")
    assert answers[CUSTOMER_CODE].status_code == 200  # the customer step again, with the refusal
    assert "already handling another customer" in answers[CUSTOMER_CODE].content.decode()
    overview = client.get(url("bookings:overview")).content.decode()
    assert "Asiakas" not in overview  # the register customer of CUSTOMER_CODE was not opened in this session


def test_customer_step__session_signed_out_in_another_tab_meanwhile__refused_not_an_error(
    client, organisation, customer, monkeypatch
) -> None:
    """The step reads the session as stored: one deleted after this request read it (a sign-out in another tab) is
    answered as Django answers it elsewhere, 400, with no customer locked, rather than a failed save (500)."""
    partner = UserFactory(identity_code=TEST_CODE)
    sign_in(client, partner, organisation=organisation)
    acting_context = context.acting_context

    def signed_out_meanwhile(request):
        Session.objects.all().delete()
        return acting_context(request)

    monkeypatch.setattr(context, "acting_context", signed_out_meanwhile)  # what the step check reads first

    answer = client.post(url("bookings:customer"), {"identity_code": CUSTOMER_CODE})

    assert answer.status_code == 400
    assert not Session.objects.exists()


def test_session_write__a_request_that_read_the_session_before_the_customer_was_locked__keeps_the_lock(
    client, organisation, customer, line
) -> None:
    """Django writes a session whole, as the request read it: a request that read it before another tab locked the
    customer (the organisation choice waiting for Valtuudet, the terms, a page whose idle timer it touched) wrote it
    back without the customer, and the login could then open a second one (partners/sessions.py)."""
    partner = UserFactory(identity_code=TEST_CODE, first_name="Helena", last_name="Virtanen")
    sign_in(client, partner, organisation=organisation)
    engine = type(client.session)
    stale = engine(session_key=client.session.session_key)
    last_seen = stale[LAST_SEEN]  # read by the slow request, before the customer step
    assert client.post(url("bookings:customer"), {"identity_code": CUSTOMER_CODE})["Location"] == url(
        "bookings:overview"
    )

    assert context.SESSION_KEY not in stale or stale[context.SESSION_KEY].get("customer_id") is None
    client.post(url("bookings:matter"), {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"})
    stale[LAST_SEEN] = last_seen + 60  # its own change: the idle timer
    context.choose_organisation(_request(stale), business_id=organisation.business_id, name=organisation.name)
    stale.save()

    stored = engine(session_key=stale.session_key).load()
    assert stored[context.SESSION_KEY]["customer_id"] == customer.pk
    assert stored[LAST_SEEN] == stale[LAST_SEEN]  # the stale request's own change is kept
    assert context.booking_draft(_request(stored))["service_line_id"] == line.pk  # and the draft begun meanwhile
    second = client.post(url("bookings:customer"), {"identity_code": NEW_CODE})
    assert second["Location"] == url("bookings:overview")  # the customer step is over for this login
    assert engine(session_key=stale.session_key).load()[context.SESSION_KEY]["customer_id"] == customer.pk


def _request(session):
    """A request carrying `session`, as a view gets it (the acting context reads the session and the user)."""
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.session = session
    request.user = UserFactory._meta.model.objects.get(pk=session["_auth_user_id"])
    return request
