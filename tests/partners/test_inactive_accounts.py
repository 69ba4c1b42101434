"""An account made inactive in the admin acts no more from its next request (partners/oidc.py `get_user`): a partner
who has left does not go on booking until the session ends. (The admin's own pages look at `is_active` already.)"""

from __future__ import annotations

import pytest

from bookings.models import Booking
from partners.models import User
from tests.bookings.test_journey import confirm_form, open_customer, slot_at, url
from tests.bookings.test_journey import customer as customer  # noqa: F401 - fixtures
from tests.bookings.test_journey import line as line  # noqa: F401
from tests.bookings.test_journey import organisation as organisation  # noqa: F401
from tests.bookings.test_journey import partner as partner  # noqa: F401

pytestmark = pytest.mark.django_db


def test_partner__made_inactive_mid_session__can_neither_read_nor_book(client, partner, customer, line) -> None:
    open_customer(client)
    client.post(url("bookings:matter"), {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"})
    client.post(url("bookings:time"), {"slot": slot_at(line).pk})
    client.post(url("bookings:contact"), {"phone": "040 123 4567", "email": ""})
    form = confirm_form(client.get(url("bookings:check")))

    User.objects.filter(pk=partner.pk).update(is_active=False)

    overview = client.get(url("bookings:overview"))
    confirmed = client.post(url("bookings:check"), form)
    assert overview.status_code == confirmed.status_code == 302
    assert confirmed["Location"] == overview["Location"]  # to sign in again, not to a booking's page
    assert not Booking.objects.filter(status=Booking.Status.CONFIRMED).exists()
    assert "Asiakas" not in client.get(overview["Location"], follow=True).content.decode()
