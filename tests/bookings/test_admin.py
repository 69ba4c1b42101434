"""What a phone service capacity administrator does in Django admin, through the admin's own pages."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.urls import reverse

from bookings.models import Booking, Customer, ServiceLine, Slot
from bookings.permissions import CAPACITY_ADMIN_GROUP
from kelabooking.models import Message
from partners.models import AuditEvent, User
from registry.models import Organisation

pytestmark = pytest.mark.django_db

HELSINKI = ZoneInfo("Europe/Helsinki")
NOW = dt.datetime(2027, 2, 8, 8, 0, tzinfo=HELSINKI)  # Monday morning
TODAY = NOW.date()
BOOKINGS = "admin:bookings_booking_changelist"
SLOTS = "admin:bookings_slot_changelist"
CALL_LIST = "admin:bookings_booking_call_list"
IDENTITY_CODES = ["131052-308T", "010190-9037"]  # how they would look in a page, if they ever leaked

_references = (f"ADM-{number:04d}".translate(str.maketrans("01", "AB")) for number in itertools.count())


@pytest.fixture(autouse=True)
def _monday_morning():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def capacity_admin() -> User:
    user = User.objects.create_user(username="kapasiteetti", password="x", is_staff=True, first_name="Kaija")
    user.groups.add(Group.objects.get(name=CAPACITY_ADMIN_GROUP))
    return user


@pytest.fixture
def admin_client(client, capacity_admin):
    client.force_login(capacity_admin)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"  # the admin follows the browser; the project default is Finnish
    return client


@pytest.fixture
def line() -> ServiceLine:
    return ServiceLine.objects.create(name_fi="Asumisen tuet", name_sv="Stöd för boende", name_en="Housing benefits")


def make_slot(line: ServiceLine, *, at: dt.datetime, language: str = "fi", capacity: int = 3) -> Slot:
    return Slot.objects.create(
        service_line=line, language=language, starts_at=at, ends_at=at + dt.timedelta(minutes=45), capacity=capacity
    )


def make_customer(identity_code: str = IDENTITY_CODES[0], **kwargs) -> Customer:
    fields = {"first_name": "Aino", "last_name": "Asiakas", "phone": "+358401110000"} | kwargs
    return Customer.objects.create(identity_code=identity_code, **fields)


def book(
    slot: Slot,
    *,
    customer: Customer | None = None,
    status: str = Booking.Status.CONFIRMED,
    hold_expires_at: dt.datetime | None = None,
    **kwargs,
) -> Booking:
    """A booking made by Kela's phone service (no partner needed), consistent for its status."""
    if customer is None:
        customer = make_customer(identity_code=f"0101{Booking.objects.count():02d}-900A")
    fields = {
        "reference": next(_references),
        "channel": Booking.Channel.KELA_PHONE_SERVICE,
        "contact_phone": "+358401234567",
        "confirmed_at": NOW if status == Booking.Status.CONFIRMED else None,
        "hold_expires_at": (hold_expires_at or NOW + dt.timedelta(minutes=10))
        if status == Booking.Status.HELD
        else None,
        "cancelled_at": NOW if status == Booking.Status.CANCELLED else None,
    } | kwargs
    return Booking.objects.create(slot=slot, customer=customer, status=status, **fields)


def at(hour: int, minute: int = 0, *, days: int = 0) -> dt.datetime:
    return dt.datetime.combine(TODAY + dt.timedelta(days=days), dt.time(hour, minute), tzinfo=HELSINKI)


def test_capacity_admin_group__has_exactly_its_permissions() -> None:
    group = Group.objects.get(name=CAPACITY_ADMIN_GROUP)
    codenames = set(group.permissions.values_list("content_type__app_label", "codename"))
    expected = {
        ("bookings", f"{action}_{model}")
        for model in ["serviceline", "openingrule", "closedday", "slot"]
        for action in ["view", "add", "change", "delete"]
    }
    expected |= {("bookings", "view_booking"), ("bookings", "change_booking"), ("bookings", "view_customer")}
    assert codenames == expected


def test_capacity_admin__pages_of_capacity__open(admin_client, line) -> None:
    ServiceLine.objects.create(name_fi="Eläkkeet", name_sv="Pensioner", name_en="Pensions")  # a line filter needs two
    for name in ["serviceline", "openingrule", "closedday", "slot"]:
        assert admin_client.get(reverse(f"admin:bookings_{name}_changelist")).status_code == 200, name
        assert admin_client.get(reverse(f"admin:bookings_{name}_add")).status_code == 200, name
    response = admin_client.get(reverse("admin:bookings_openingrule_changelist"))
    filters = {spec.title for spec in response.context["cl"].filter_specs}
    assert filters == {"service line", "service language", "weekday"}


def test_slot_admin__list__shows_confirmed_bookings_and_unexpired_holds(admin_client, line) -> None:
    busy = make_slot(line, at=at(9))
    quiet = make_slot(line, at=at(9, 45))
    book(busy)
    book(busy)
    book(busy, status=Booking.Status.HELD)
    book(busy, status=Booking.Status.HELD, hold_expires_at=NOW - dt.timedelta(minutes=1))  # expired: not counted
    book(busy, status=Booking.Status.CANCELLED)
    book(quiet, status=Booking.Status.CANCELLED)

    response = admin_client.get(reverse(SLOTS))

    rows = {slot.pk: (slot.capacity, slot.taken) for slot in response.context["cl"].result_list}
    assert rows == {busy.pk: (3, 3), quiet.pk: (3, 0)}  # two confirmed and one unexpired hold
    assert "Places taken" in response.content.decode()


@pytest.mark.parametrize("slots", [1, 12])
def test_slot_admin__list__queries_do_not_grow_with_slots_or_bookings(
    admin_client, line, slots, django_assert_max_num_queries
) -> None:
    for index in range(slots):
        slot = make_slot(line, at=at(9, days=index), language=["fi", "sv"][index % 2])
        book(slot)
        book(slot, status=Booking.Status.HELD)
    # With the filtered query's trial run (kelabooking.admin.StrictChangeList).
    with django_assert_max_num_queries(13):
        response = admin_client.get(reverse(SLOTS), {"service_line__id__exact": line.pk})
    assert response.context["cl"].result_count == slots


def test_slot_admin__filters__by_date_line_and_language(admin_client, line) -> None:
    other = ServiceLine.objects.create(name_fi="Eläkkeet", name_sv="Pensioner", name_en="Pensions")
    make_slot(line, at=at(9))
    make_slot(line, at=at(9), language="sv")
    make_slot(other, at=at(9))
    make_slot(line, at=at(9, days=1))

    def count(**params) -> int:
        return admin_client.get(reverse(SLOTS), params).context["cl"].result_count

    assert count() == 4
    assert count(service_line__id__exact=line.pk) == 3
    assert count(language__exact="sv") == 1
    assert count(starts_at__year=TODAY.year, starts_at__month=TODAY.month, starts_at__day=TODAY.day) == 3


def test_slot_admin__capacity_below_what_is_taken__is_refused(admin_client, line) -> None:
    slot = make_slot(line, at=at(9), capacity=3)
    book(slot)
    book(slot, status=Booking.Status.HELD)
    url = reverse("admin:bookings_slot_change", args=[slot.pk])

    response = admin_client.post(url, {"capacity": 1})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["capacity"]
    response = admin_client.post(url, {"capacity": 2})
    assert response.status_code == 302
    slot.refresh_from_db()
    assert slot.capacity == 2


def test_booking_admin__is_read_only(admin_client, line) -> None:
    booking = book(make_slot(line, at=at(10, days=1)))
    change = reverse("admin:bookings_booking_change", args=[booking.pk])

    assert admin_client.get(reverse("admin:bookings_booking_add")).status_code == 403
    page = admin_client.get(change)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert "2027-02-09 10:00–10:45 Housing benefits (Finnish)" in page.content.decode()  # Helsinki time, not UTC
    assert admin_client.post(change, {"status": "cancelled"}).status_code == 403
    assert (
        admin_client.post(reverse("admin:bookings_booking_delete", args=[booking.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert admin_client.get(reverse("admin:bookings_booking_delete", args=[booking.pk])).status_code == 403
    actions = admin_client.get(reverse(BOOKINGS)).context["action_form"].fields["action"].choices
    assert [name for name, _label in actions if name] == ["cancel_bookings"]
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED


def test_booking_admin__identity_code__appears_nowhere(admin_client, line) -> None:
    customer = make_customer(IDENTITY_CODES[0])
    booking = book(make_slot(line, at=at(10, days=1)), customer=customer, description="Vuokran muutos")
    pages = [
        reverse(BOOKINGS),
        reverse("admin:bookings_booking_change", args=[booking.pk]),
        reverse("admin:bookings_customer_changelist"),
        reverse("admin:bookings_customer_change", args=[customer.pk]),
    ]
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert IDENTITY_CODES[0] not in response.content.decode(), url
    assert "Aino Asiakas" in admin_client.get(pages[1]).content.decode()
    # Searching by identity code finds nothing; only the reference finds a booking, however typed.
    assert admin_client.get(reverse(BOOKINGS), {"q": IDENTITY_CODES[0]}).context["cl"].result_count == 0
    assert admin_client.get(reverse(BOOKINGS), {"q": "Asiakas"}).context["cl"].result_count == 0
    for typed in [booking.reference, booking.reference.lower().replace("-", ""), f" {booking.reference} "]:
        assert admin_client.get(reverse(BOOKINGS), {"q": typed}).context["cl"].result_count == 1, typed


def test_customer_admin__lists_name_and_source_only(admin_client) -> None:
    customer = make_customer(non_disclosure=True, email="salainen@example.org", phone="+358409999999")

    changelist = admin_client.get(reverse("admin:bookings_customer_changelist")).content.decode()
    change = admin_client.get(reverse("admin:bookings_customer_change", args=[customer.pk])).content.decode()

    assert "Asiakas" in changelist
    for page in (changelist, change):
        assert customer.identity_code not in page
        assert "salainen@example.org" not in page
        assert "+358409999999" not in page
        assert "non-disclosure" not in page.lower()  # who is under a safety risk is no list's business
    assert admin_client.get(reverse("admin:bookings_customer_add")).status_code == 403


def test_booking_admin__filters__by_date_line_language_interpreter_channel_and_organisation(admin_client, line) -> None:
    other = ServiceLine.objects.create(name_fi="Eläkkeet", name_sv="Pensioner", name_en="Pensions")
    book(make_slot(line, at=at(10, days=1)), interpreter_needed=True, interpreter_language="ru")
    book(make_slot(line, at=at(11, days=2), language="sv"))
    partner = User.objects.create_user(username="kumppani", identity_code="010594Y9021")
    for business_id in ["0201256-6", "0211675-2"]:
        organisation = Organisation.objects.create(business_id=business_id, name=f"Kunta {business_id}")
        book(
            make_slot(other, at=at(12, days=3)) if business_id == "0201256-6" else Slot.objects.get(service_line=other),
            channel=Booking.Channel.PARTNER,
            organisation=organisation,
            booked_by=partner,
        )

    response = admin_client.get(reverse(BOOKINGS))
    titles = {str(spec.title) for spec in response.context["cl"].filter_specs}
    assert titles == {
        "starts",
        "service line",
        "service language",
        "status",
        "interpreter needed",
        "made by",
        "organisation",
    }

    def count(**params) -> int:
        return admin_client.get(reverse(BOOKINGS), params).context["cl"].result_count

    assert count(interpreter_needed__exact="1") == 1
    assert count(slot__language__exact="sv") == 1
    assert count(slot__service_line__id__exact=line.pk) == 2
    assert count(channel__exact="partner") == 2
    assert count(organisation__id__exact=organisation.pk) == 1
    tomorrow = TODAY + dt.timedelta(days=1)
    month = {"slot__starts_at__year": tomorrow.year, "slot__starts_at__month": tomorrow.month}
    assert count(**month) == 4
    assert count(**month, slot__starts_at__day=tomorrow.day) == 1
    assert count(**month, slot__starts_at__day=tomorrow.day + 2) == 2


def test_call_list__for_a_date__lists_confirmed_bookings_in_time_order_without_identity(admin_client, line) -> None:
    other = ServiceLine.objects.create(name_fi="Eläkkeet", name_sv="Pensioner", name_en="Pensions")
    day = TODAY + dt.timedelta(days=2)
    late = book(
        make_slot(line, at=at(14, 15, days=2)),
        customer=make_customer(IDENTITY_CODES[0]),
        description='=HYPERLINK("http://x")',
        contact_phone="+358501112223",
    )
    early = book(
        make_slot(other, at=at(9, days=2), language="sv"),
        customer=make_customer(IDENTITY_CODES[1], first_name="Nimi", last_name="Näkymätön"),
        interpreter_needed=True,
        interpreter_language="ara",
        description="Ändrad hyra; två barn",
    )
    book(make_slot(line, at=at(10, 30, days=2)), status=Booking.Status.CANCELLED)
    book(make_slot(line, at=at(11, 15, days=2)), status=Booking.Status.HELD)
    book(make_slot(line, at=at(9, days=3)))  # the next day

    response = admin_client.get(reverse(CALL_LIST), {"date": day.isoformat()})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f"call-list-{day.isoformat()}.csv" in response["Content-Disposition"]
    assert response.content.startswith("\ufeff".encode())
    text = response.content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [
        [
            "time",
            "reference",
            "customer",
            "service line",
            "service language",
            "interpreter language",
            "contact phone",
            "description of the matter",
        ],
        [
            "09:00",
            early.reference,
            "Nimi Näkymätön",
            "Pensions",
            "Swedish",
            "ara",  # no name known: the code as it is
            "040 1234567",
            "Ändrad hyra; två barn",
        ],
        [
            "14:15",
            late.reference,
            "Aino Asiakas",
            "Housing benefits",
            "Finnish",
            "",
            "050 1112223",
            '\'=HYPERLINK("http://x")',
        ],
    ]
    for secret in IDENTITY_CODES:
        assert secret not in text


def test_call_list__each_export_is_in_the_audit_trail(admin_client, line) -> None:
    """The call list takes customers' names, phones and matters out of the service in a file: who took which day's,
    and how many bookings it held, is an audit event (no names in it)."""
    day = TODAY + dt.timedelta(days=2)
    book(make_slot(line, at=at(9, days=2)), customer=make_customer(IDENTITY_CODES[0]))
    book(make_slot(line, at=at(10, days=2)), customer=make_customer(IDENTITY_CODES[1]))

    call_list = reverse("admin:bookings_booking_call_list")
    assert admin_client.head(call_list, {"date": day.isoformat()}).status_code == 200  # no file leaves: no event
    assert admin_client.get(call_list, {"date": day.isoformat()}).status_code == 200

    [event] = AuditEvent.objects.filter(action=AuditEvent.Action.STAFF_CALL_LIST_EXPORTED)
    assert event.actor.pk == int(admin_client.session["_auth_user_id"])
    assert event.details == {"date": day.isoformat(), "bookings": 2}


def test_call_list__without_a_date__is_todays_and_linked_from_the_booking_list(admin_client, line) -> None:
    todays = book(make_slot(line, at=at(12)))
    book(make_slot(line, at=at(12, days=1)))

    rows = list(csv.reader(io.StringIO(admin_client.get(reverse(CALL_LIST)).content.decode("utf-8-sig"))))

    assert [row[1] for row in rows[1:]] == [todays.reference]
    changelist = admin_client.get(reverse(BOOKINGS)).content.decode()
    assert f'{reverse(CALL_LIST)}?date={TODAY.isoformat()}"' in changelist
    drilled = admin_client.get(
        reverse(BOOKINGS), {"slot__starts_at__year": 2027, "slot__starts_at__month": 2, "slot__starts_at__day": 9}
    ).content.decode()
    assert f'{reverse(CALL_LIST)}?date=2027-02-09"' in drilled
    assert admin_client.get(reverse(CALL_LIST), {"date": "9.2.2027"}).status_code == 400


def test_call_list__without_view_permission__is_refused(client, line) -> None:
    client.force_login(User.objects.create_user(username="muu", password="x", is_staff=True))
    assert client.get(reverse(CALL_LIST)).status_code == 403


def test_booking_admin__cancel_action__asks_for_a_reason_then_cancels_through_the_service(
    admin_client, capacity_admin, line, django_capture_on_commit_callbacks
) -> None:
    upcoming = book(make_slot(line, at=at(13, days=1)), contact_email="aino@example.org")
    past = book(make_slot(line, at=at(9, days=-3)))
    selected = {"action": "cancel_bookings", "_selected_action": [upcoming.pk, past.pk]}

    response = admin_client.post(reverse(BOOKINGS), selected)

    assert response.status_code == 200  # the intermediate page
    page = response.content.decode()
    assert 'name="reason"' in page
    assert upcoming.reference in page
    assert past.reference in page
    upcoming.refresh_from_db()
    assert upcoming.status == Booking.Status.CONFIRMED

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse(BOOKINGS), {**selected, "confirm": "1", "reason": "Agent sick"})

    assert response.status_code == 302
    upcoming.refresh_from_db()
    past.refresh_from_db()
    assert upcoming.status == Booking.Status.CANCELLED
    assert upcoming.cancelled_by == capacity_admin
    assert upcoming.cancellation_reason == "Agent sick"
    assert upcoming.cancelled_at == NOW
    assert past.status == Booking.Status.CONFIRMED  # the service refuses to cancel the past
    assert Message.objects.filter(kind=Booking.MessageKind.CANCELLATION, recipient="aino@example.org").count() == 1
    notes = [str(message) for message in get_messages(response.wsgi_request)]
    assert f"{past.reference}: Only a booked time in the future can be cancelled." in notes
    assert "1 booking cancelled." in notes
    event = AuditEvent.objects.get(action=AuditEvent.Action.BOOKING_CANCELLED)
    assert (event.booking, event.actor, event.details) == (upcoming, capacity_admin, {"by": "admin"})


def test_booking_admin__cancel_action_without_reason__asks_again(admin_client, line) -> None:
    booking = book(make_slot(line, at=at(13, days=1)))
    selected = {"action": "cancel_bookings", "_selected_action": [booking.pk], "confirm": "1", "reason": ""}

    response = admin_client.post(reverse(BOOKINGS), selected)

    assert response.status_code == 200
    assert response.context["form"].errors["reason"]
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED


def test_booking_admin__view_only_staff__gets_no_cancel_action(client, line) -> None:
    from django.contrib.auth.models import Permission

    viewer = User.objects.create_user(username="katsoja", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_booking"))
    client.force_login(viewer)
    booking = book(make_slot(line, at=at(13, days=1)))

    response = client.get(reverse(BOOKINGS))
    assert response.status_code == 200
    assert response.context["action_form"] is None or not [
        name for name, _label in response.context["action_form"].fields["action"].choices if name
    ]
    client.post(reverse(BOOKINGS), {"action": "cancel_bookings", "_selected_action": [booking.pk]})
    client.post(
        reverse(BOOKINGS),
        {"action": "cancel_bookings", "_selected_action": [booking.pk], "confirm": "1", "reason": "x"},
    )
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED


def test_booking_admin__change_page__names_the_interpreter_language(admin_client, line) -> None:
    booking = book(make_slot(line, at=at(10, days=1)), interpreter_needed=True, interpreter_language="so")
    page = admin_client.get(reverse("admin:bookings_booking_change", args=[booking.pk])).content.decode()
    field = page.split("field-interpreter_language_display")[1].split("</div>\n")[0]
    assert "Somali" in field


def test_booking_admin__reference_search__the_whole_reference_finds_its_booking_a_part_finds_nothing(
    admin_client, line
) -> None:
    booking, other = book(make_slot(line, at=at(10, days=1))), book(make_slot(line, at=at(11, days=1)))

    def found(typed: str) -> list[Booking]:
        return list(admin_client.get(reverse(BOOKINGS), {"q": typed}).context["cl"].result_list)

    assert found(booking.reference.lower()) == [booking]
    assert found(other.reference) == [other]
    # An exact match on the stored reference (its unique index serves it), not a search inside references.
    for part in (booking.reference[:3], booking.reference[4:], booking.reference[:-1], "-"):
        assert found(part) == [], part
