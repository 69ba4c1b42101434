"""Identity codes at rest (kelabooking/crypto.py): encrypted in every table, found by the keyed index, rotated by the
command, encrypted by the data migration, and refused at start without keys."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.exceptions import FieldError
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings
from django.urls import reverse

from bookings.models import Customer
from bookings.services import ContactDetails, booking_confirm, booking_hold, customer_find_or_create
from kelabooking import crypto, services
from kelabooking.checks import check_identity_code_keys
from kelabooking.management.commands.rotate_identity_keys import rotate
from kelabooking.models import Message
from partners.models import AuditEvent, User
from partners.services import audit_event_record
from tests.factories import CustomerFactory, OrganisationFactory, SlotFactory, acting_for
from tests.partners.provider import TEST_CODE, FakeProvider, finish_login, start_login

pytestmark = pytest.mark.django_db

CUSTOMER_CODE = "131052-308T"
NEW_ENCRYPTION_KEY = "9KpzBRQbGlmoGAXQvuLyHOgGl0YIr1F5xXbPsuZoQDE="
NEW_HMAC_KEY = "c2Vjb25kLWhtYWMta2V5LWZvci10aGUtcm90YXRpb24tdGVzdA=="


def spellings(code: str) -> set[str]:
    """The code as typed and without its century sign: either would show a stored code in clear."""
    return {code, code.lower(), code[:6] + code[7:], code[:6] + code[7:].lower()}


def every_stored_text() -> str:
    """Every column of every row of every table, as text; sessions decoded (their data is only signed base64)."""
    texts = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 - the test's own names
            texts += [repr(row) for row in cursor.fetchall()]
    texts += [repr(SessionStore().decode(session.session_data)) for session in Session.objects.all()]
    return "\n".join(texts)


def test_stored_data__after_login_booking_and_messages__holds_no_identity_code_in_clear(client, op: FakeProvider):
    finish_login(client, start_login(client, op))  # the real code flow: the ID token, with the code, is in the session
    partner = User.objects.get()
    assert partner.identity_code == TEST_CODE
    organisation = OrganisationFactory()
    acting = acting_for(partner, organisation=organisation)
    customer = customer_find_or_create(acting=acting, identity_code=CUSTOMER_CODE)
    acting = acting_for(partner, organisation=organisation, customer=customer)
    hold = booking_hold(acting=acting, slot_id=SlotFactory().pk)
    booking = booking_confirm(
        acting=acting,
        hold_id=hold.pk,
        contact=ContactDetails(phone="+358401234567", email="asiakas@example.org"),
        idempotency_key="3f1c2a4e-8d9b-4c7a-9e2f-1b3c4d5e6f70",
    )
    for message_id in Message.objects.values_list("pk", flat=True):
        services.message_send(message_id=message_id)  # the worker's part: texts and calendar entry written
    assert Message.objects.filter(status=Message.Status.SENT).count() == 2  # the SMS and the e-mail
    assert booking.reference in "".join(Message.objects.values_list("body", flat=True))
    assert AuditEvent.objects.filter(actor=partner, customer=customer).exists()
    stored = every_stored_text()
    for code in (TEST_CODE, CUSTOMER_CODE):
        found = [spelling for spelling in spellings(code) if spelling in stored]
        assert not found, f"an identity code is stored in clear: {found}"
    # …and yet every one of them reads back, and is found by its keyed index.
    assert Customer.objects.with_identity_code(CUSTOMER_CODE).get() == customer
    assert User.objects.with_identity_code(TEST_CODE).get() == partner
    assert AuditEvent.objects.filter(actor=partner).first().actor_identity_code == TEST_CODE
    assert crypto.decrypt(client.session["oidc_id_token"]).count(".") == 2


def test_keyed_index__unique_per_person__a_second_row_for_one_code_is_refused() -> None:
    from django.db import IntegrityError, transaction

    CustomerFactory(identity_code=CUSTOMER_CODE)
    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.create(identity_code=CUSTOMER_CODE)
    assert Customer.objects.count() == 1
    digest = Customer.objects.get().identity_code_digest
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert CUSTOMER_CODE not in digest


def test_encrypted_column__exact_lookup__refused_instead_of_never_matching() -> None:
    CustomerFactory(identity_code=CUSTOMER_CODE)
    with pytest.raises(FieldError):
        list(Customer.objects.filter(identity_code=CUSTOMER_CODE))


def test_encryption__randomised__two_rows_with_one_code_share_no_ciphertext() -> None:
    assert crypto.encrypt(CUSTOMER_CODE) != crypto.encrypt(CUSTOMER_CODE)
    assert crypto.decrypt(crypto.encrypt(CUSTOMER_CODE)) == CUSTOMER_CODE


def test_rotation__new_keys_first__rows_rewritten_found_and_readable_with_the_new_keys_alone(settings, client, op):
    finish_login(client, start_login(client, op))
    partner = User.objects.get()
    customer = customer_find_or_create(acting=acting_for(partner), identity_code=CUSTOMER_CODE)
    old_encryption, old_hmac = settings.IDENTITY_CODE_ENCRYPTION_KEYS, settings.IDENTITY_CODE_HMAC_KEYS
    with override_settings(
        IDENTITY_CODE_ENCRYPTION_KEYS=[NEW_ENCRYPTION_KEY, *old_encryption],
        IDENTITY_CODE_HMAC_KEYS=[NEW_HMAC_KEY, *old_hmac],
    ):
        # Before the rotation, rows under the old keys are still found: a look-up tries every key.
        assert Customer.objects.with_identity_code(CUSTOMER_CODE).get() == customer
        assert customer_find_or_create(acting=acting_for(partner), identity_code=CUSTOMER_CODE) == customer
        before = rotate(dry_run=True)
        assert before["customers"] == 1
        assert before["partners"] == 1
        assert before["audit events' actor codes"] >= 1
        call_command("rotate_identity_keys")
        assert set(rotate(dry_run=True).values()) == {0}  # idempotent: nothing left under an old key
    with override_settings(IDENTITY_CODE_ENCRYPTION_KEYS=[NEW_ENCRYPTION_KEY], IDENTITY_CODE_HMAC_KEYS=[NEW_HMAC_KEY]):
        assert Customer.objects.with_identity_code(CUSTOMER_CODE).get().identity_code == CUSTOMER_CODE
        assert User.objects.with_identity_code(TEST_CODE).get() == partner
        assert {event.actor_identity_code for event in AuditEvent.objects.filter(actor=partner)} == {TEST_CODE}
        digest = Customer.objects.get().identity_code_digest
        assert (
            AuditEvent.objects.filter(customer_digest=digest).count()
            == AuditEvent.objects.filter(customer=customer).count()
        )


def test_development_keys__generated_once_under_the_key_folder_and_kept(settings, tmp_path) -> None:
    settings.IDENTITY_CODE_ENCRYPTION_KEYS, settings.IDENTITY_CODE_HMAC_KEYS = [], []
    settings.IDENTITY_CODE_GENERATE_KEYS, settings.IDENTITY_CODE_KEY_DIR = True, tmp_path
    first = crypto.encrypt(CUSTOMER_CODE), crypto.digest(CUSTOMER_CODE)
    files = sorted(path.name for path in tmp_path.iterdir())
    assert files == [crypto.ENCRYPTION_KEY_FILE, crypto.HMAC_KEY_FILE]
    assert all((tmp_path / name).stat().st_mode & 0o077 == 0 for name in files)  # readable by the owner only
    assert crypto.decrypt(first[0]) == CUSTOMER_CODE
    assert crypto.digest(CUSTOMER_CODE) == first[1]  # the same key on the next use


def test_system_check__no_keys_in_production__refuses_to_start(settings) -> None:
    settings.IDENTITY_CODE_GENERATE_KEYS = False
    settings.IDENTITY_CODE_ENCRYPTION_KEYS, settings.IDENTITY_CODE_HMAC_KEYS = [], []
    assert {message.id for message in check_identity_code_keys()} == {"kelabooking.E002"}
    assert len(check_identity_code_keys()) == 2
    settings.IDENTITY_CODE_ENCRYPTION_KEYS, settings.IDENTITY_CODE_HMAC_KEYS = ["not-a-fernet-key"], ["c2hvcnQ="]
    assert len(check_identity_code_keys()) == 2  # malformed keys are refused too
    settings.IDENTITY_CODE_ENCRYPTION_KEYS, settings.IDENTITY_CODE_HMAC_KEYS = [NEW_ENCRYPTION_KEY], [NEW_HMAC_KEY]
    assert check_identity_code_keys() == []


@pytest.mark.django_db(transaction=True)
def test_data_migration__rows_stored_in_clear__encrypted_and_indexed() -> None:
    """Back to before the encryption, rows written in clear as today's were; forward again: encrypted and found."""
    executor = MigrationExecutor(connection)
    before = [("bookings", "0007_add_booking_sequence"), ("partners", "0005_add_booking_moved_action")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    old_customer = old.get_model("bookings", "Customer").objects.create(identity_code=CUSTOMER_CODE, first_name="Aino")
    old_user = old.get_model("partners", "User").objects.create(username="partner-old", identity_code=TEST_CODE)
    with time_machine.travel(dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC)):
        old.get_model("partners", "AuditEvent").objects.create(
            actor_id=old_user.pk, actor_identity_code=TEST_CODE, customer_id=old_customer.pk, action="customer_opened"
        )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    stored = every_stored_text()
    assert not [spelling for code in (TEST_CODE, CUSTOMER_CODE) for spelling in spellings(code) if spelling in stored]
    customer = Customer.objects.with_identity_code(CUSTOMER_CODE).get()
    assert (customer.pk, customer.first_name) == (old_customer.pk, "Aino")
    assert User.objects.with_identity_code(TEST_CODE).get().pk == old_user.pk
    event = AuditEvent.objects.get(customer=customer)
    assert event.actor_identity_code == TEST_CODE
    assert event.customer_digest == customer.identity_code_digest


@pytest.mark.postgres
def test_who_handled_this_customer__searched_through_the_keyed_index_never_a_scan(superuser_client) -> None:
    customer = CustomerFactory(identity_code=CUSTOMER_CODE)
    for _ in range(3):
        audit_event_record(acting=acting_for(), action=AuditEvent.Action.CUSTOMER_OPENED, customer=customer)
    audit_event_record(acting=acting_for(), action=AuditEvent.Action.CUSTOMER_OPENED, customer=CustomerFactory())
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # as on a table of millions: no scan where an index serves
        plan = AuditEvent.objects.filter(customer_digest__in=crypto.digests(CUSTOMER_CODE)).order_by("-created_at")
        assert "audit_customer_digest_time_idx" in plan.explain()
    page = superuser_client.post(
        reverse("admin:partners_auditevent_customer"),
        {"identity_code": CUSTOMER_CODE},
        headers={"Accept-Language": "en"},
    )
    assert page.content.decode().count("Customer opened") == 3
