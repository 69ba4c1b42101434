"""A request whose database connection is cut, or whose database is away (a failover's gap), gets the translated
"please try again" page with 503 and Retry-After: never the 500 page, never a half-written booking; and the same
page answers normally once the database is back (kelabooking.middleware.DatabaseUnavailableMiddleware)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
import pytest
from django.db import OperationalError, connection
from django.test import Client

from bookings.models import Booking
from kelabooking.models import Message
from tests.bookings.test_journey import book, confirm_form, open_customer, slot_at, url
from tests.bookings.test_journey import customer as customer  # noqa: F401 - fixtures
from tests.bookings.test_journey import line as line  # noqa: F401
from tests.bookings.test_journey import organisation as organisation  # noqa: F401
from tests.bookings.test_journey import partner as partner  # noqa: F401

pytestmark = pytest.mark.django_db


@contextlib.contextmanager
def database_away(*, only: str = "") -> Iterator[None]:
    """Every query (or each whose SQL mentions `only`) fails as a cut connection does: the driver's error, as Django
    hands it on (its own OperationalError) when a failover drops the connection. (Query wrappers run outside the
    backend's translation of driver errors, so the wrapper raises the translated one.)"""

    def cut(execute, sql, params, many, context):
        if only in sql:
            raise OperationalError("server closed the connection unexpectedly") from psycopg.OperationalError()
        return execute(sql, params, many, context)

    with connection.execute_wrapper(cut):
        yield


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)  # answer as the server does, not with the exception


def assert_try_again_page(response, *, language: str = "en") -> None:
    assert response.status_code == 503, response.content.decode()[:500]
    assert response["Retry-After"] == "5"
    assert "no-store" in response["Cache-Control"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "geolocation=()" in response["Permissions-Policy"]
    page = response.content.decode()
    assert f'<html lang="{language}">' in page
    if language == "en":
        assert "The service is briefly unavailable" in page
        assert "you can confirm it again: the time is not booked twice" in page


@pytest.mark.parametrize("only", ["", "bookings_booking"], ids=["every-query", "the-views-query"])
def test_page__database_away__503_try_again_then_200_when_back(client, partner, customer, line, only) -> None:
    """Every query failing breaks the session's middleware before the view; the booking table's, the view itself.
    Either used to answer with the 500 page."""
    open_customer(client)
    response, _key = book(client, line, slot_at(line))
    done = response["Location"]

    with database_away(only=only):
        assert_try_again_page(client.get(done))
    assert client.get(done).status_code == 200


def test_page__database_away__try_again_page_in_the_language_of_the_address(client, partner, customer, line) -> None:
    open_customer(client)
    with database_away():
        response = client.get(url("bookings:overview", language="sv"))
    assert_try_again_page(response, language="sv")


def test_confirm__database_away__503_nothing_half_written_and_the_repeat_books_once(
    client, partner, customer, line
) -> None:
    open_customer(client)
    client.post(url("bookings:matter"), {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"})
    client.post(url("bookings:time"), {"slot": slot_at(line).pk})
    client.post(url("bookings:contact"), {"phone": "040 123 4567"})
    form = confirm_form(client.get(url("bookings:check")))

    with database_away(only="UPDATE"):  # the confirm's write fails: its transaction rolls back
        assert_try_again_page(client.post(url("bookings:check"), form))
    assert list(Booking.objects.values_list("status", flat=True)) == [Booking.Status.HELD]
    assert not Message.objects.exists()

    again = client.post(url("bookings:check"), form)  # the same form: the same idempotency key
    booking = Booking.objects.get()
    assert (again.status_code, again["Location"]) == (302, url("bookings:done", reference=booking.reference))
    assert booking.status == Booking.Status.CONFIRMED
    assert str(booking.idempotency_key) == form["idempotency_key"]
    assert list(Message.objects.values_list("channel", flat=True)) == ["sms"]  # no e-mail address was typed


def test_page__other_errors__still_the_500_page(client, partner, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("bookings.views.render", broken, raising=False)
    response = client.get(url("bookings:customer"))
    assert response.status_code == 500
    assert "Retry-After" not in response
