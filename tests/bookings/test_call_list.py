"""The day's call list (CSV) as the phone service's agents read it: who to call, in which language, at which number."""

from __future__ import annotations

import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from bookings.permissions import CAPACITY_ADMIN_GROUP, CUSTOMER_SERVICE_GROUP
from partners.models import User
from tests.factories import BookingFactory, CustomerFactory, ServiceLineFactory, SlotFactory

pytestmark = pytest.mark.django_db

HELSINKI = ZoneInfo("Europe/Helsinki")
NOW = dt.datetime(2027, 2, 8, 8, 0, tzinfo=HELSINKI)  # Monday morning
TODAY = NOW.date()
CALL_LIST = "admin:bookings_booking_call_list"
BOOKINGS = "admin:bookings_booking_changelist"


@pytest.fixture(autouse=True)
def _monday_morning():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def staff_client(client):
    """A capacity administrator signed in to the admin: the group that has the bookings' view permission."""
    user = User.objects.create_user(username="soittolista", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=CAPACITY_ADMIN_GROUP))
    assert user.has_perm("bookings.view_booking")
    client.force_login(user)
    return client


def at(hour: int, minute: int = 0, *, days: int = 0) -> dt.datetime:
    return dt.datetime.combine(TODAY + dt.timedelta(days=days), dt.time(hour, minute), tzinfo=HELSINKI)


def slot_at(when: dt.datetime, **kwargs):
    line = kwargs.pop("service_line", None) or ServiceLineFactory(
        name_fi="Asumisen tuet", name_sv="Stöd för boende", name_en="Housing benefits"
    )
    return SlotFactory(service_line=line, starts_at=when, ends_at=when + dt.timedelta(minutes=45), **kwargs)


def call_list(client, language: str, **params) -> list[dict[str, str]]:
    response = client.get(reverse(CALL_LIST), params, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


@pytest.fixture
def interpreted_booking():
    """Somali interpreter, a Finnish number, a customer from the register."""
    return BookingFactory.confirmed(
        slot=slot_at(at(10)),
        customer=CustomerFactory(first_name="Liisa", last_name="Tavallinen"),
        interpreter_needed=True,
        interpreter_language="so",
        contact_phone="+358401110001",
    )


@pytest.mark.parametrize(
    ("language", "header", "somali", "finnish"),
    [
        ("fi", {"customer": "asiakas", "interpreter": "tulkkauskieli"}, "somali", "suomi"),
        ("sv", {"customer": "kund", "interpreter": "tolkningsspråk"}, "somaliska", "finska"),
        ("en", {"customer": "customer", "interpreter": "interpreter language"}, "Somali", "Finnish"),
    ],
)
def test_call_list__names_the_customer_and_the_languages_in_the_admins_language(
    staff_client, interpreted_booking, language, header, somali, finnish
) -> None:
    rows = call_list(staff_client, language, date=TODAY.isoformat())

    assert len(rows) == 1
    row = rows[0]
    assert row[header["customer"]] == "Liisa Tavallinen"
    assert row[header["interpreter"]] == somali  # the name, not the code "so"
    assert "so" not in row.values()
    assert finnish in row.values()  # the service language too
    assert interpreted_booking.reference in row.values()


def test_call_list__phone__in_the_same_form_as_everywhere_else(staff_client) -> None:
    BookingFactory.confirmed(slot=slot_at(at(9)), contact_phone="+358401110001")
    BookingFactory.confirmed(slot=slot_at(at(11)), contact_phone="+46701234567")

    rows = call_list(staff_client, "en", date=TODAY.isoformat())

    # National for a Finnish number, international otherwise; an international one is not quoted as a formula.
    assert [row["contact phone"] for row in rows] == ["040 1110001", "+46 70 123 45 67"]


def test_call_list__customer_not_in_register__has_the_name_the_partner_typed(staff_client) -> None:
    BookingFactory.confirmed(
        slot=slot_at(at(9)), customer=CustomerFactory.not_in_register(first_name="Uusi", last_name="Asiakas")
    )
    BookingFactory.confirmed(slot=slot_at(at(10)), customer=CustomerFactory.not_in_register())  # no name given

    rows = call_list(staff_client, "en", date=TODAY.isoformat())

    assert [row["customer"] for row in rows] == ["Uusi Asiakas", ""]


def test_call_list__no_identity_code_and_names_are_kept_from_running_as_formulas(staff_client) -> None:
    customer = CustomerFactory(first_name="=cmd|' /C calc'!A0", last_name="")
    BookingFactory.confirmed(slot=slot_at(at(9)), customer=customer)

    response = staff_client.get(reverse(CALL_LIST), {"date": TODAY.isoformat()}, HTTP_ACCEPT_LANGUAGE="en")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))

    assert rows[0]["customer"] == "'=cmd|' /C calc'!A0"
    assert customer.identity_code not in response.content.decode("utf-8-sig")


def test_call_list__without_a_date__is_todays(staff_client, interpreted_booking) -> None:
    BookingFactory.confirmed(slot=slot_at(at(10, days=1)))  # tomorrow's

    rows = call_list(staff_client, "en")

    assert [row["reference"] for row in rows] == [interpreted_booking.reference]


@pytest.mark.parametrize(
    "drilled",
    [
        {"slot__starts_at__year": "2027", "slot__starts_at__month": "2", "slot__starts_at__day": "30"},
        {"slot__starts_at__year": "2027", "slot__starts_at__month": "x", "slot__starts_at__day": "1"},
        {"slot__starts_at__year": "99999999999", "slot__starts_at__month": "1", "slot__starts_at__day": "1"},
    ],
)
def test_call_list__bad_drill_down_date__the_booking_list_links_to_todays(staff_client, drilled) -> None:
    page = staff_client.get(reverse(BOOKINGS), drilled, follow=True, HTTP_ACCEPT_LANGUAGE="en")

    assert page.status_code == 200
    assert f'{reverse(CALL_LIST)}?date={TODAY.isoformat()}"' in page.content.decode()


@pytest.mark.parametrize("date", ["9.2.2027", "2027-02-30", "0001-01-01", "9999-12-31", "tomorrow"])
def test_call_list__bad_date__is_refused_with_the_fields_error_not_another_days_list(staff_client, date) -> None:
    response = staff_client.get(reverse(CALL_LIST), {"date": date}, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 400
    assert response.content.decode() in {"Give the date in the form YYYY-MM-DD.", "Give a date between 2000 and 2099."}


def test_call_list__staff_without_the_bookings_view_permission__is_refused(client) -> None:
    client.force_login(User.objects.create_user(username="muu", password="x", is_staff=True))

    assert client.get(reverse(CALL_LIST)).status_code == 403


def test_call_list__customer_service__refused_and_not_offered_while_capacity_admins_get_it(
    staff_client, interpreted_booking
) -> None:
    """The call list is the capacity administrators' (docs/staff.md): customer service, who may view bookings
    to see what a message is about, gets neither the list nor its link."""
    agent = User.objects.create_user(username="asiakaspalvelu", password="x", is_staff=True)
    agent.groups.add(Group.objects.get(name=CUSTOMER_SERVICE_GROUP))
    assert agent.has_perm("bookings.view_booking")
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(agent)

    assert client.get(reverse(CALL_LIST), {"date": TODAY.isoformat()}).status_code == 403
    bookings = client.get(reverse(BOOKINGS))
    assert bookings.status_code == 200
    assert reverse(CALL_LIST) not in bookings.content.decode()
    assert [row["reference"] for row in call_list(staff_client, "en")] == [interpreted_booking.reference]
    assert reverse(CALL_LIST) in staff_client.get(reverse(BOOKINGS)).content.decode()
