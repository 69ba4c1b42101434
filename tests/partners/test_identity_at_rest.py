"""Identity codes at rest (kelabooking/crypto.py): encrypted in every table, found by the keyed index, each value
naming its key, rotated by the command, encrypted by the data migrations, and refused at start without keys or with
stored values under a key that is not configured."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import io
import re

import pytest
import time_machine
from cryptography.fernet import Fernet
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.exceptions import FieldError
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models import TextField, Value
from django.db.models.functions import Cast
from django.test import override_settings
from django.urls import reverse

from bookings.models import Customer
from bookings.services import ContactDetails, booking_confirm, booking_hold, customer_find_or_create
from kelabooking import crypto, delivery, fields
from kelabooking.checks import check_identity_code_keys, check_stored_key_ids
from kelabooking.management.commands.rotate_identity_keys import older_keys_in_use, rotate
from kelabooking.models import Message
from partners.models import AuditEvent, RemovedAuditEvents, User
from partners.services import audit_event_record
from tests.factories import CustomerFactory, OrganisationFactory, PartnerFactory, SlotFactory, acting_for
from tests.partners.provider import OTHER_TEST_CODE, TEST_CODE, FakeProvider, finish_login, start_login

pytestmark = pytest.mark.django_db

CUSTOMER_CODE = "131052-308T"
# Made for this run: a key written in the repository is a published one (kelabooking/published.py).
NEW_ENCRYPTION_KEY = crypto.new_encryption_key()
NEW_HMAC_KEY = crypto.new_hmac_key()


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
        delivery.message_send(message_id=message_id)  # the worker's part: texts and calendar entry written
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
    from django.db import IntegrityError

    CustomerFactory(identity_code=CUSTOMER_CODE)
    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.create(identity_code=CUSTOMER_CODE)
    assert Customer.objects.count() == 1
    digest = Customer.objects.get().identity_code_digest
    assert re.fullmatch(r"[0-9a-f]{8}:[A-Za-z0-9_-]{43}", digest)  # key id, then the HMAC in base64url
    assert CUSTOMER_CODE not in digest


def stored(model, field: str) -> list[str]:
    """A column's values as stored (not decrypted)."""
    return list(model.objects.annotate(raw=Cast(field, TextField())).values_list("raw", flat=True))


def test_stored_values__each_names_the_key_that_made_it(settings) -> None:
    CustomerFactory(identity_code=CUSTOMER_CODE)
    encryption_id = crypto.key_id(settings.IDENTITY_CODE_ENCRYPTION_KEYS[0])
    hmac_id = crypto.key_id(settings.IDENTITY_CODE_HMAC_KEYS[0])
    assert re.fullmatch(r"[0-9a-f]{8}", encryption_id)
    assert encryption_id != hmac_id
    [code] = stored(Customer, "identity_code")
    assert code.startswith(f"{encryption_id}:gAAAAA")  # the key's id, then the Fernet token
    assert stored(Customer, "identity_code_digest") == [crypto.digest(CUSTOMER_CODE)]
    assert crypto.digest(CUSTOMER_CODE).startswith(f"{hmac_id}:")
    with override_settings(IDENTITY_CODE_ENCRYPTION_KEYS=[NEW_ENCRYPTION_KEY, *settings.IDENTITY_CODE_ENCRYPTION_KEYS]):
        assert Customer.objects.get().identity_code == CUSTOMER_CODE  # read with the key it names, not the newest
        assert crypto.encrypt(CUSTOMER_CODE).startswith(f"{crypto.key_id(NEW_ENCRYPTION_KEY)}:")


@pytest.mark.parametrize(
    ("stored_with", "looked_up_with"),
    [
        pytest.param("new, old", "old", id="a process missing the new key"),
        pytest.param("old", "new", id="the old key dropped too early"),
    ],
)
def test_customer_look_up__person_indexed_under_a_key_missing_here__refused_never_stored_twice(
    settings, stored_with: str, looked_up_with: str
) -> None:
    old = settings.IDENTITY_CODE_HMAC_KEYS
    key_lists = {"new, old": [NEW_HMAC_KEY, *old], "old": old, "new": [NEW_HMAC_KEY]}
    acting = acting_for(PartnerFactory())
    with override_settings(IDENTITY_CODE_HMAC_KEYS=key_lists[stored_with]):
        CustomerFactory(identity_code=CUSTOMER_CODE, non_disclosure=True)
    missing = crypto.key_id(key_lists[stored_with][0])
    with (
        override_settings(IDENTITY_CODE_HMAC_KEYS=key_lists[looked_up_with]),
        pytest.raises(crypto.UnknownKeyError, match=f"bookings_customer.identity_code_digest.*{missing}"),
    ):
        customer_find_or_create(acting=acting, identity_code=CUSTOMER_CODE)
    assert Customer.objects.get().non_disclosure  # one row, still with its non-disclosure marking


def test_partner_login__partner_indexed_under_a_key_missing_here__refused_never_stored_twice(
    settings, client, op
) -> None:
    with override_settings(IDENTITY_CODE_HMAC_KEYS=[NEW_HMAC_KEY, *settings.IDENTITY_CODE_HMAC_KEYS]):
        finish_login(client, start_login(client, op))
    client.logout()
    with pytest.raises(crypto.UnknownKeyError, match=crypto.key_id(NEW_HMAC_KEY)), transaction.atomic():
        finish_login(client, start_login(client, op))
    assert User.objects.count() == 1


def test_system_check__stored_values_under_keys_not_configured__refuses_naming_each_key_and_column(settings) -> None:
    customer = CustomerFactory(identity_code=CUSTOMER_CODE)
    audit_event_record(acting=acting_for(), action=AuditEvent.Action.CUSTOMER_OPENED, customer=customer)
    assert check_stored_key_ids(databases=["default"]) == []
    old_encryption = crypto.key_id(settings.IDENTITY_CODE_ENCRYPTION_KEYS[0])
    old_hmac = crypto.key_id(settings.IDENTITY_CODE_HMAC_KEYS[0])
    settings.IDENTITY_CODE_ENCRYPTION_KEYS, settings.IDENTITY_CODE_HMAC_KEYS = [NEW_ENCRYPTION_KEY], [NEW_HMAC_KEY]

    messages = [message.msg for message in check_stored_key_ids(databases=["default"])]
    assert {message.id for message in check_stored_key_ids(databases=["default"])} == {"kelabooking.E005"}
    for column, key in [
        ("bookings_customer.identity_code", old_encryption),
        ("bookings_customer.identity_code_digest", old_hmac),
        ("partners_user.identity_code", old_encryption),
        ("partners_user.identity_code_digest", old_hmac),
        ("partners_auditevent.actor_identity_code", old_encryption),
        ("partners_auditevent.customer_digest", old_hmac),
    ]:
        assert any(column in message and key in message for message in messages), (column, messages)
    assert check_stored_key_ids() == []  # without database access (plain `check`, the deploy check) it reads nothing
    with pytest.raises(SystemCheckError, match="kelabooking.E005"):
        call_command("check", "--database", "default")


def test_rotation__encryption_key_dropped_before_it__refused_naming_the_key_and_column(settings) -> None:
    CustomerFactory(identity_code=CUSTOMER_CODE)
    dropped = crypto.key_id(settings.IDENTITY_CODE_ENCRYPTION_KEYS[0])
    settings.IDENTITY_CODE_ENCRYPTION_KEYS = [NEW_ENCRYPTION_KEY]

    with pytest.raises(CommandError, match=f"bookings_customer.identity_code were stored with key {dropped}"):
        call_command("rotate_identity_keys")
    with pytest.raises(CommandError, match=dropped):
        call_command("rotate_identity_keys", "--dry-run")


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param(bytes(32), id="32 zero bytes"),
        pytest.param(b"ab" * 16, id="two byte values"),
        pytest.param(bytes(range(15)) * 3, id="fifteen byte values"),
        pytest.param(bytes(range(31)), id="31 bytes"),
    ],
)
def test_system_check__weak_hmac_key__refused(settings, secret: bytes) -> None:
    settings.IDENTITY_CODE_HMAC_KEYS = [base64.urlsafe_b64encode(secret).decode("ascii")]
    [message] = check_identity_code_keys()
    assert message.id == "kelabooking.E002"
    assert "IDENTITY_CODE_HMAC_KEYS" in message.msg
    assert "too weak" in message.msg


def test_system_check__random_keys_of_the_command__accepted(settings) -> None:
    settings.IDENTITY_CODE_ENCRYPTION_KEYS = [crypto.new_encryption_key() for _ in range(50)]
    settings.IDENTITY_CODE_HMAC_KEYS = [crypto.new_hmac_key() for _ in range(50)]
    assert check_identity_code_keys() == []


def test_rotate_identity_keys__new_keys__prints_the_new_keys_only(settings) -> None:
    out = io.StringIO()
    call_command("rotate_identity_keys", "--new-keys", stdout=out)
    printed = out.getvalue()
    for key in [*settings.IDENTITY_CODE_ENCRYPTION_KEYS, *settings.IDENTITY_CODE_HMAC_KEYS]:
        assert key not in printed
        assert crypto.key_id(key) not in printed
    new = re.findall(r"\(key ([0-9a-f]{8})\): (\S+)", printed)
    assert len(new) == 2
    assert all(crypto.key_id(key) == key_id for key_id, key in new)
    settings.IDENTITY_CODE_ENCRYPTION_KEYS, settings.IDENTITY_CODE_HMAC_KEYS = [new[0][1]], [new[1][1]]
    assert check_identity_code_keys() == []


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
        assert before["users"] == 1
        assert before["audit events' actor codes"] >= 1
        call_command("rotate_identity_keys")
        assert set(rotate(dry_run=True).values()) == {0}  # idempotent: nothing left under an old key
        assert older_keys_in_use() == []  # so the old keys may go
    with override_settings(IDENTITY_CODE_ENCRYPTION_KEYS=[NEW_ENCRYPTION_KEY], IDENTITY_CODE_HMAC_KEYS=[NEW_HMAC_KEY]):
        assert Customer.objects.with_identity_code(CUSTOMER_CODE).get().identity_code == CUSTOMER_CODE
        assert User.objects.with_identity_code(TEST_CODE).get() == partner
        assert {event.actor_identity_code for event in AuditEvent.objects.filter(actor=partner)} == {TEST_CODE}
        digest = Customer.objects.get().identity_code_digest
        assert (
            AuditEvent.objects.filter(customer_digest=digest).count()
            == AuditEvent.objects.filter(customer=customer).count()
        )
        assert check_stored_key_ids(databases=["default"]) == []


def test_development_keys__generated_once_under_the_key_folder_and_kept(settings, tmp_path) -> None:
    settings.IDENTITY_CODE_ENCRYPTION_KEYS, settings.IDENTITY_CODE_HMAC_KEYS = [], []
    settings.IDENTITY_CODE_GENERATE_KEYS, settings.IDENTITY_CODE_KEY_DIR = True, tmp_path
    first = crypto.encrypt(CUSTOMER_CODE), crypto.digest(CUSTOMER_CODE)
    files = sorted(path.name for path in tmp_path.iterdir())
    assert files == [crypto.ENCRYPTION_KEY_FILE, crypto.HMAC_KEY_FILE]
    assert all((tmp_path / name).stat().st_mode & 0o077 == 0 for name in files)  # readable by the owner only
    assert crypto.decrypt(first[0]) == CUSTOMER_CODE
    assert crypto.digest(CUSTOMER_CODE) == first[1]  # the same key on the next use


def test_development_keys__generation_off__the_key_folder_is_never_read(settings, tmp_path) -> None:
    settings.IDENTITY_CODE_ENCRYPTION_KEYS, settings.IDENTITY_CODE_HMAC_KEYS = [], []
    settings.IDENTITY_CODE_GENERATE_KEYS, settings.IDENTITY_CODE_KEY_DIR = True, tmp_path
    crypto.encrypt(CUSTOMER_CODE)  # a development run leaves its keys under var/
    settings.IDENTITY_CODE_GENERATE_KEYS = False
    with pytest.raises(crypto.IdentityCodeKeyError, match="Set IDENTITY_CODE_ENCRYPTION_KEYS"):
        crypto.encrypt(CUSTOMER_CODE)


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


@pytest.mark.django_db(transaction=True)
def test_data_migration__values_stored_without_key_ids__each_given_the_id_of_its_key(settings) -> None:
    """Back to before the key ids, rows as the previous version stored them (a bare Fernet token, a hex HMAC); forward
    again: each value names its key, reads back, is found, and the audit trail's indexes follow. Reversible."""
    executor = MigrationExecutor(connection)
    before = [
        ("bookings", "0010_add_customer_last_opened_at"),
        ("partners", "0008_audit_trail_trusts_no_session_setting"),
        ("kelabooking", "0008_add_sessions_cleared_and_keep_erased_messages_unsent"),
    ]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    fernet = Fernet(settings.IDENTITY_CODE_ENCRYPTION_KEYS[0])
    secret = crypto.key_bytes(settings.IDENTITY_CODE_HMAC_KEYS[0])

    def token(code: str) -> Value:  # written as is: not through the field, which now adds the key id
        return Value(fernet.encrypt(code.encode()).decode(), output_field=TextField())

    def index(code: str) -> str:
        return hmac.new(secret, code.encode(), hashlib.sha256).hexdigest()

    old_customer = old.get_model("bookings", "Customer").objects.create(identity_code=CUSTOMER_CODE, first_name="Aino")
    old_user = old.get_model("partners", "User").objects.create(username="partner-old", identity_code=TEST_CODE)
    for row, code in ((old_customer, CUSTOMER_CODE), (old_user, TEST_CODE)):
        type(row).objects.filter(pk=row.pk).update(identity_code=token(code), identity_code_digest=index(code))
    events = old.get_model("partners", "AuditEvent").objects
    events.create(actor_id=old_user.pk, actor_identity_code=token(TEST_CODE), customer_id=old_customer.pk,
                  customer_digest=index(CUSTOMER_CODE), action="customer_opened")  # fmt: skip
    events.create(actor_id=old_user.pk, actor_identity_code=token(TEST_CODE), customer_digest=index(OTHER_TEST_CODE),
                  action="customer_opened")  # fmt: skip  # of a customer removed since
    run = old.get_model("kelabooking", "RetentionRun").objects.create(started_at=dt.datetime(2026, 1, 5, tzinfo=dt.UTC))
    old.get_model("partners", "RemovedAuditEvents").objects.create(
        run=run, customer_digest=index(OTHER_TEST_CODE), events=2, oldest=run.started_at, newest=run.started_at
    )
    legacy = sorted(every_stored_text().splitlines())  # rows in any order: an UPDATE moves a row on PostgreSQL

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    columns = [
        (Customer, "identity_code"),
        (Customer, "identity_code_digest"),
        (User, "identity_code"),
        (User, "identity_code_digest"),
        (AuditEvent, "actor_identity_code"),
        (AuditEvent, "customer_digest"),
        (RemovedAuditEvents, "customer_digest"),
    ]
    encryption_id = crypto.key_id(settings.IDENTITY_CODE_ENCRYPTION_KEYS[0])
    hmac_id = crypto.key_id(settings.IDENTITY_CODE_HMAC_KEYS[0])
    for model, field in columns:
        values = [value for value in stored(model, field) if value]
        assert values, (model, field)
        assert all(value.startswith((f"{encryption_id}:", f"{hmac_id}:")) for value in values), (model, field)
    assert check_stored_key_ids(databases=["default"]) == []
    customer = Customer.objects.with_identity_code(CUSTOMER_CODE).get()
    assert (customer.pk, customer.first_name, customer.identity_code) == (old_customer.pk, "Aino", CUSTOMER_CODE)
    assert User.objects.with_identity_code(TEST_CODE).get().pk == old_user.pk
    assert AuditEvent.objects.get(customer=customer).customer_digest == customer.identity_code_digest
    assert {event.actor_identity_code for event in AuditEvent.objects.all()} == {TEST_CODE}
    assert AuditEvent.objects.filter(customer_digest__in=crypto.digests(OTHER_TEST_CODE)).count() == 1
    assert RemovedAuditEvents.objects.filter(customer_digest__in=crypto.digests(OTHER_TEST_CODE)).count() == 1

    executor = MigrationExecutor(connection)
    executor.migrate(before)
    assert sorted(every_stored_text().splitlines()) == legacy  # back as the previous version stored them
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def table_scans(tables: list[str]) -> dict[str, tuple[int, int]]:
    """(sequential scans, index scans) of each table in this transaction so far, as PostgreSQL counts them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, seq_scan, coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables WHERE relname = ANY(%s)",
            [tables],
        )
        return {name: (seq, idx) for name, seq, idx in cursor.fetchall()}


def scans_since(before: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    after = table_scans(list(before))
    return {table: (after[table][0] - seq, after[table][1] - idx) for table, (seq, idx) in before.items()}


def no_scan_where_an_index_serves() -> None:
    """As on tables of millions: the planner scans a whole table only where no index serves."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")


@pytest.mark.postgres
def test_startup_key_check__reads_every_keyed_column_with_index_probes_never_a_scan() -> None:
    customer = CustomerFactory(identity_code=CUSTOMER_CODE)
    audit_event_record(acting=acting_for(), action=AuditEvent.Action.CUSTOMER_OPENED, customer=customer)
    tables = sorted({model._meta.db_table for model, _field in fields.keyed_columns()})
    no_scan_where_an_index_serves()
    before = table_scans(tables)

    assert check_stored_key_ids(databases=["default"]) == []

    scans = scans_since(before)
    assert {table: sequential for table, (sequential, _index) in scans.items()} == dict.fromkeys(tables, 0)
    assert all(index > 0 for _sequential, index in scans.values()), scans


@pytest.mark.postgres
def test_who_handled_this_customer__searched_through_the_keyed_index_never_a_scan(superuser_client) -> None:
    customer = CustomerFactory(identity_code=CUSTOMER_CODE)
    for _ in range(3):
        audit_event_record(acting=acting_for(), action=AuditEvent.Action.CUSTOMER_OPENED, customer=customer)
    audit_event_record(acting=acting_for(), action=AuditEvent.Action.CUSTOMER_OPENED, customer=CustomerFactory())
    no_scan_where_an_index_serves()
    before = table_scans([AuditEvent._meta.db_table])
    page = superuser_client.post(
        reverse("admin:partners_auditevent_customer"),
        {"identity_code": CUSTOMER_CODE},
        headers={"Accept-Language": "en"},
    )
    assert page.content.decode().count("Customer opened") == 3
    assert scans_since(before)[AuditEvent._meta.db_table][0] == 0
