"""The data the replica drills (tests/test_replica_drills.py) need, written into the drills' own PostgreSQL by a
process of its own (DATABASE_URL names that cluster, not the test database): slots to book, partner sessions signed
in with a customer locked and a draft up to the contact details, and what every periodic job finds due.

Run: python -m tests.replica_seed '{"sessions": 300, ...}'; prints one JSON line: the session keys and slot ids.
"""

from __future__ import annotations

import datetime as dt
import json
import sys


def seed(*, sessions: int, slots: int, capacity: int, reminded: int, expired_holds: int) -> dict[str, object]:
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import transaction

    from bookings.models import OpeningRule, ServiceLine, Slot
    from kelabooking import clock
    from tests.acting import signed_in_session
    from tests.factories import BookingFactory, CustomerFactory, OrganisationFactory, PartnerFactory, SlotFactory

    today = clock.localnow().date()
    with transaction.atomic():
        organisation = OrganisationFactory(name="Drillin kunta")  # added by hand: no registry sync deactivates it
        line = ServiceLine.objects.create(name_fi="Harjoitus", name_sv="Övning", name_en="Drill")
        first = clock.localnow().replace(hour=9, minute=0, second=0, microsecond=0) + dt.timedelta(days=3)
        slot_ids = [
            Slot.objects.create(
                service_line=line,
                language="fi",
                starts_at=first + dt.timedelta(days=index // 10, minutes=45 * (index % 10)),
                ends_at=first + dt.timedelta(days=index // 10, minutes=45 * (index % 10 + 1)),
                capacity=capacity,
                set_by_hand=True,  # no opening rule makes them: slot generation (beat) would remove them otherwise
            ).pk
            for index in range(slots)
        ]
        keys = []
        for index in range(sessions):
            contact = {"phone": "+358401234567", "email": f"asiakas{index}@example.org", "description": "Drill"}
            draft = {"service_line_id": line.pk, "language": "fi", "interpreter_language": "", "contact": contact}
            store = SessionStore()
            store.update(
                signed_in_session(PartnerFactory(), organisation=organisation, customer=CustomerFactory(), draft=draft)
            )
            store.save()
            keys.append(store.session_key)

        # What the periodic jobs find due: an opening rule (slot generation), confirmed calls tomorrow (reminders),
        # holds long expired (retention).
        rules_line = ServiceLine.objects.create(name_fi="Säännöt", name_sv="Regler", name_en="Rules")
        for weekday in range(7):  # every day: two weeks always hold days that are not public holidays
            OpeningRule.objects.create(
                service_line=rules_line,
                language="fi",
                weekday=weekday,
                opens_at=dt.time(9),
                closes_at=dt.time(12),
                agents=2,
                valid_from=today,
            )
        tomorrow = clock.localnow().replace(hour=10, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
        reminded_ids = [
            BookingFactory.confirmed(
                slot=SlotFactory(starts_at=tomorrow + dt.timedelta(minutes=45 * index)), organisation=organisation
            ).pk
            for index in range(reminded)
        ]
        expired_ids = [
            BookingFactory.held(expires_at=clock.now() - dt.timedelta(days=2), organisation=organisation).pk
            for _ in range(expired_holds)
        ]
    return {
        "sessions": keys,
        "slots": slot_ids,
        "rules_line": rules_line.pk,
        "reminded": reminded_ids,
        "expired_holds": expired_ids,
    }


if __name__ == "__main__":
    import django
    from django.conf import settings

    django.setup()
    # The factories give every user a password; nobody signs in with it, so it need not cost PBKDF2's 600 000 rounds.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    print(json.dumps(seed(**json.loads(sys.argv[1]))))
