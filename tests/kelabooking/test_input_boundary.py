"""What outside input and outside faults used to turn into a 500, each at the depth where it arose: the input
boundary (control characters, out-of-range dates), the admin's lookups, the session saved after a committed confirm,
and the e-mail a repeat send carries. Plus the headers every page and every page with personal data sends."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator

import pytest
import time_machine
from django.contrib.sessions.backends.db import SessionStore
from django.core.checks import Error
from django.db import OperationalError
from django.test import Client
from django.urls import reverse
from django.utils import translation

from bookings.models import Booking, ClosedDay, ServiceLine, Slot
from kelabooking import clock, delivery, services
from kelabooking.checks import check_shared_cache
from kelabooking.forms import BoundedDateField
from kelabooking.models import Message
from partners.models import AuditEvent, Notice
from tests.bookings.test_journey import book, open_customer, slot_at, url
from tests.bookings.test_journey import customer as customer  # noqa: F401 - fixtures
from tests.bookings.test_journey import line as line  # noqa: F401
from tests.bookings.test_journey import organisation as organisation  # noqa: F401
from tests.bookings.test_journey import partner as partner  # noqa: F401
from tests.drills import SmtpRelay
from tests.factories import BookingFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "address",
    [
        "/en/booking/%00/",
        "/en/booking/%00/cancel/",
        "/en/?q=%01",
        "/en/registry/request/?%00=1",
    ],
)
def test_input__control_character_in_address__translated_400_and_nothing_written(client, address) -> None:
    events = AuditEvent.objects.count()
    with translation.override("fi"):
        response = client.get(address.replace("/en/", "/fi/"))
    assert response.status_code == 400
    assert "Osoitetta ei voi käyttää" in response.content.decode()
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize("address", ["/oidc/callback/?error=%00", "/oidc/callback/?state=%00&code=x"])
def test_sign_in_callback__control_character__translated_400_and_audited_as_a_failed_sign_in(client, address) -> None:
    with translation.override("fi"):
        response = client.get(address)
    assert response.status_code == 400
    assert "Osoitetta ei voi käyttää" in response.content.decode()
    event = AuditEvent.objects.get()
    assert (event.action, event.outcome, event.details) == (
        AuditEvent.Action.LOGIN_FAILED,
        AuditEvent.Outcome.ERROR,
        {"reason": "malformed_response"},
    )
    assert event.actor is None


@pytest.mark.parametrize("week", ["0001-01-01", "9999-12-31", "2026-02-30", "99999-01-01", "x", ""])
def test_time_picker__week_outside_any_computation__shows_a_bookable_week(client, partner, customer, line, week):
    open_customer(client)
    slot = slot_at(line)
    client.post(url("bookings:matter"), {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"})
    response = client.get(url("bookings:time"), {"week": week})
    assert response.status_code == 200
    assert f'value="{slot.pk}"' in response.content.decode()


def test_bounded_date__far_dates__the_fields_error() -> None:
    field = BoundedDateField()
    assert field.clean("2026-12-02") == dt.date(2026, 12, 2)
    for value in ("0001-01-01", "9999-12-31"):
        with pytest.raises(Exception, match="between 2000 and 2099"):
            field.clean(value)


@pytest.mark.parametrize(
    ("name", "query"),
    [
        ("admin:registry_organisation_export", {"created_at__year": "2026"}),
        ("admin:registry_organisation_export", {"is_active__exact": "maybe"}),
        ("admin:partners_auditevent_changelist", {"actor": "abc"}),
        ("admin:partners_auditevent_changelist", {"actor": "99999999999999999999999"}),
        ("admin:bookings_booking_call_list", {"date": "9999-12-31"}),
        ("admin:kelabooking_message_changelist", {"created_at__year": "9999"}),  # the year after it: no datetime
        ("admin:bookings_slot_add", {"starts_at": "0"}),  # an initial value for the split date and time inputs
        ("admin:partners_notice_add", {"valid_until": "2026-02-30"}),
        (
            "admin:bookings_booking_changelist",
            {
                "slot__starts_at__year": "99999999999999999999",
                "slot__starts_at__month": "1",
                "slot__starts_at__day": "1",
            },
        ),
    ],
)
def test_admin__unknown_or_out_of_range_lookup__no_500(superuser_client, name, query) -> None:
    response = superuser_client.get(reverse(name), query)
    assert response.status_code < 500


def test_admin_add_page__initial_values_in_the_address__kept_only_where_the_field_takes_them(superuser_client) -> None:
    query = {"starts_at": "0", "ends_at": "2027-02-08 10:45", "capacity": "5", "bookings": "1", "_popup": "x"}
    response = superuser_client.get(reverse("admin:bookings_slot_add"), query)

    assert response.status_code == 200
    initial = response.context["adminform"].form.initial
    assert (initial["ends_at"], initial["capacity"]) == (dt.datetime(2027, 2, 8, 10, 45), 5)  # noqa: DTZ001 - as typed
    assert "starts_at" not in initial


@pytest.mark.parametrize("actor", ["abc", "1.5", " ", ""])
def test_audit_changelist__actor_not_a_user_id__answered_as_a_bad_filter(superuser_client, actor) -> None:
    """The list's own *actor* filter (a SimpleListFilter) passed its value to the query unchecked: 500 once the
    filter was offered, i.e. once an event had an actor."""
    user = UserFactory(first_name="Helena", last_name="Kumppani")
    AuditEvent.objects.create(action=AuditEvent.Action.LOGIN, actor=user, actor_name="Helena Kumppani")
    AuditEvent.objects.create(action=AuditEvent.Action.LOGIN_FAILED)
    changelist = reverse("admin:partners_auditevent_changelist")

    response = superuser_client.get(changelist, {"actor": actor})

    if actor:
        assert (response.status_code, response["Location"]) == (302, f"{changelist}?e=1")
    else:
        assert response.context["cl"].result_count == 2  # an empty value: no filter, as Django's own filters take it
    assert superuser_client.get(changelist, {"actor": str(user.pk)}).context["cl"].result_count == 1


def test_pages__signed_in__no_store_and_every_page_has_a_permissions_policy(client, partner, customer, line) -> None:
    public = client.get("/en/")
    assert "camera=()" in public["Permissions-Policy"]
    open_customer(client)
    response, _key = book(client, line, slot_at(line))
    booking = Booking.objects.get()
    for page in (
        url("bookings:done", reference=booking.reference),
        url("bookings:cancel", reference=booking.reference),
    ):
        shown = client.get(page)
        assert shown.status_code == 200
        assert "no-store" in shown["Cache-Control"]
        assert "geolocation=()" in shown["Permissions-Policy"]


def test_confirm__session_save_fails_after_commit__booking_shown_not_500(
    client, partner, customer, line, monkeypatch
) -> None:
    """A database connection cut right after the confirm committed used to answer 500 for a booking that was made."""
    open_customer(client)
    client.post(url("bookings:matter"), {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"})
    client.post(url("bookings:time"), {"slot": slot_at(line).pk})
    client.post(url("bookings:contact"), {"phone": "040 123 4567"})
    from tests.bookings.test_journey import confirm_form

    form = confirm_form(client.get(url("bookings:check")))
    real_save = SessionStore.save

    def cut(self, must_create=False):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(SessionStore, "save", cut)
    response = client.post(url("bookings:check"), form)
    monkeypatch.setattr(SessionStore, "save", real_save)

    booking = Booking.objects.get(status=Booking.Status.CONFIRMED)
    assert response.status_code == 302
    assert response["Location"] == url("bookings:done", reference=booking.reference)
    # The session never heard of the confirm (its draft is still there): the check page finds the booking by its key.
    assert client.get(url("bookings:check"))["Location"] == url("bookings:done", reference=booking.reference)


class AnswerLostRelay(SmtpRelay):
    """A mail relay that takes the first e-mail and answers too late: the sender gives up (EMAIL_TIMEOUT) not
    knowing that the relay has it."""

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        answer = await super().handle_DATA(server, session, envelope)
        if len(self.messages) == 1:
            await asyncio.sleep(1.0)
        return answer


@pytest.fixture
def answer_lost_relay(settings) -> Iterator[SmtpRelay]:
    relay = AnswerLostRelay()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", relay.port, 0.3
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    yield relay
    relay.close()


def test_message__sent_again_after_the_relay_took_it_unbeknown__same_message_id(answer_lost_relay, settings) -> None:
    """The outbox promised a stable Message-ID, but each attempt built a new one with `make_msgid`."""
    message = services.message_enqueue(  # its send task waits for a commit that never comes: the test sends
        key="booking:41:confirmation:email",
        kind=Booking.MessageKind.CONFIRMATION,
        channel=Message.Channel.EMAIL,
        recipient="aino@example.org",
        language="fi",
        subject="Aika varattu",
        body="Kela soittaa.",
    )
    first = delivery.message_send(message_id=message.pk)
    with time_machine.travel(clock.now() + dt.timedelta(seconds=settings.MESSAGE_RETRY_MAX_SECONDS + 1)):
        second = delivery.message_send(message_id=message.pk)

    assert (first.sent, first.retry_in is not None, second.sent) == (False, True, True)
    original, repeat = answer_lost_relay.messages
    message_id = str(original["Message-ID"]).strip()
    assert str(repeat["Message-ID"]).strip() == message_id
    assert message_id == delivery.message_id(message, domain="kela.example")
    assert delivery.message_id(Message(key="booking:42:confirmation:email"), domain="kela.example") != message_id


def test_check__several_web_workers_without_a_shared_cache__refused(settings, monkeypatch) -> None:
    settings.DEBUG = False
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    monkeypatch.setenv("GUNICORN_WORKERS", "3")
    assert [message.id for message in check_shared_cache()] == ["kelabooking.E001"]
    assert isinstance(check_shared_cache()[0], Error)
    monkeypatch.setenv("GUNICORN_WORKERS", "1")
    assert check_shared_cache() == []
    monkeypatch.setenv("GUNICORN_WORKERS", "3")
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://x"}}
    assert check_shared_cache() == []


@pytest.mark.parametrize("year", ["0001", "1999", "2100", "9999"])
def test_admin__notice_or_slot_outside_2000_2099__the_fields_error_and_nothing_saved(superuser_client, year) -> None:
    """Year 1 at midnight in Helsinki's time is a date before year 1 in UTC: PostgreSQL would keep it, and every page
    that reads the notices (or the slots' list) would fail on it, the admin's own too."""
    service_line = ServiceLine.objects.create(name_fi="Asumistuki", name_sv="Bostadsbidrag", name_en="Housing")
    forms = [
        (
            "admin:partners_notice_add",
            {"level": "info", "text_fi": "a", "text_sv": "a", "text_en": "a"},
            ("valid_from", "valid_until"),
        ),
        (
            "admin:bookings_slot_add",
            {"service_line": service_line.pk, "language": "fi", "capacity": "2"},
            ("starts_at", "ends_at"),
        ),
    ]
    for name, data, (start, end) in forms:
        data |= {f"{start}_0": f"{year}-01-01", f"{start}_1": "00:00", f"{end}_0": "2099-12-31", f"{end}_1": "00:00"}
        response = superuser_client.post(reverse(name), data)
        assert response.status_code == 200, name
        errors = response.context_data["adminform"].form.errors.as_data()
        assert [error.code for error in errors[start]] == ["out_of_range"], name
    assert not Notice.objects.exists()
    assert not Slot.objects.exists()
    assert superuser_client.get("/fi/").status_code == 200


@pytest.mark.parametrize("cookie", ['sessionid="abcdefgh\\000ijkl"', "sessionid=abcdefgh\x00ijkl"])
def test_session_cookie__no_key_of_ours__no_session_not_500(client, cookie) -> None:
    """A session cookie with a NUL (Django unquotes the octal escape into one) reached PostgreSQL, which refuses it in
    any query: every page answered 500. A cookie no session key of ours could be is no session."""
    for path in ("/fi/", "/en/terms/", "/admin/login/"):
        response = client.get(path, HTTP_COOKIE=cookie)
        assert response.status_code in (200, 302), (path, response.status_code)


@pytest.mark.parametrize(
    ("forwarded", "recorded"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("198.51.100.7:51234", "198.51.100.7"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:db8::2", "2001:db8::2"),
        ("unknown", "127.0.0.1"),
        ("x198.51.100.7", "127.0.0.1"),
        ("fe80::1%eth0", "127.0.0.1"),
    ],
)
def test_audited_step__forwarded_client_address_with_a_port_or_none__recorded_plainly_not_500(
    client, settings, partner, customer, forwarded, recorded
) -> None:
    """Behind a proxy (NUM_PROXIES) the client's address is the hop the proxy appended; some write a port with it, and
    one that is no address at all falls back to the proxy's own. Each reached the audit trail's address field as it
    was, whose validation answered 500."""
    settings.NUM_PROXIES = 1
    response = client.post(
        url("bookings:customer"),
        {"identity_code": customer.identity_code},
        HTTP_X_FORWARDED_FOR=forwarded,
        REMOTE_ADDR="127.0.0.1",
    )
    assert response.status_code == 302
    assert AuditEvent.objects.get(action=AuditEvent.Action.CUSTOMER_OPENED).ip_address == recorded


@pytest.mark.parametrize("language", ["fi", "sv", "en"])
def test_csrf_failure__translated_page_in_the_sites_layout(client, partner, language) -> None:
    """A form too old (or a browser that keeps no cookies) got Django's own English page for developers, whose inline
    style the CSP blocks."""
    checking = Client(enforce_csrf_checks=True)
    checking.cookies = client.cookies  # the partner's session, without the form's token
    with translation.override(language):
        address = url("bookings:customer", language)
        expected = translation.gettext("The form could not be sent")
    response = checking.post(address, {"identity_code": "241170-944V"})
    assert response.status_code == 403
    html = response.content.decode()
    assert f'<html lang="{language}"' in html
    assert expected in html
    assert "<style" not in html
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.CUSTOMER_OPENED).exists()


@pytest.mark.parametrize("selected", ["abc", "1.5", str(2**70), "\x00131052-308T"])
def test_admin_action__selection_no_id_can_be__nothing_changed_and_said_so_not_500(superuser_client, selected) -> None:
    """Any admin action (Django's `delete_selected` too) filtered the list by the posted ids as they came: a value no
    id can be answered 500, and its traceback carried the value into the log."""
    booking = BookingFactory.confirmed()
    for changelist, action in [
        ("admin:bookings_booking_changelist", "cancel_bookings"),
        ("admin:partners_notice_changelist", "delete_selected"),
    ]:
        response = superuser_client.post(
            reverse(changelist), {"action": action, "_selected_action": [selected, str(booking.pk)]}, follow=True
        )
        assert response.status_code == 200, changelist
        assert [message.level_tag for message in response.context["messages"]] == ["warning"], changelist
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED


@pytest.mark.parametrize("date", ["0001-01-01", "9999-12-31"])
def test_admin__closed_days_outside_2000_2099__the_fields_error_and_nothing_saved(superuser_client, date) -> None:
    """A closed period to 9999-12-31 left no day after it for the slot generation to step to."""
    response = superuser_client.post(
        reverse("admin:bookings_closedday_add"), {"date_from": "2026-12-24", "date_until": date, "reason": "x"}
    )
    assert response.status_code == 200
    errors = response.context_data["adminform"].form.errors.as_data()
    assert "out_of_range" in [error.code for error in errors["date_until"]]
    assert not ClosedDay.objects.exists()
