"""The audit trail is append-only and answers 'who handled this customer' without the code entering a URL."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Group
from django.db import DatabaseError, connection, transaction
from django.urls import reverse
from django.utils import translation

from bookings.models import Customer
from kelabooking import clock, crypto
from partners.models import AppendOnlyError, AuditEvent, Notice
from partners.permissions import AUDIT_READER_GROUP, SERVICE_ADMIN_GROUP
from tests.factories import UserFactory
from tests.partners.provider import OTHER_TEST_CODE, TEST_CODE

pytestmark = pytest.mark.django_db


def event(**fields) -> AuditEvent:
    return AuditEvent.objects.create(**{"action": AuditEvent.Action.LOGIN, **fields})


def test_audit_event__update_and_delete__refused_by_model_and_queryset() -> None:
    recorded = event(actor_name="Maija")
    recorded.actor_name = "Someone else"
    with pytest.raises(AppendOnlyError):
        recorded.save()
    with pytest.raises(AppendOnlyError):
        recorded.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=recorded.pk).update(actor_name="x")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get().actor_name == "Maija"


def test_audit_event__identity_code_in_details__refused() -> None:
    with pytest.raises(ValueError, match="identity codes"):
        event(details={"typed": f"customer {OTHER_TEST_CODE}"})
    assert not AuditEvent.objects.exists()


def test_audit_events__in_one_insert__checked_as_one_is_and_found_by_the_customer_digest() -> None:
    customer = Customer.objects.create(identity_code=OTHER_TEST_CODE)
    with pytest.raises(ValueError, match="identity codes"):
        AuditEvent.objects.bulk_create(
            [
                AuditEvent(action=AuditEvent.Action.CUSTOMER_OPENED),
                AuditEvent(action=AuditEvent.Action.LOGIN, details={"typed": OTHER_TEST_CODE}),
            ]
        )
    assert not AuditEvent.objects.exists()
    recorded = AuditEvent.objects.bulk_create(
        [AuditEvent(action=action, customer=customer) for action in ("customer_opened", "contact_details_shown")]
    )
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_create(recorded)  # appended once: never written again
    assert AuditEvent.objects.filter(customer_digest=customer.identity_code_digest).count() == 2


@pytest.mark.postgres
def test_audit_event__raw_sql_update_or_delete__refused_by_the_database() -> None:
    recorded = event(actor_name="Maija")
    table = AuditEvent._meta.db_table
    for statement in (f"UPDATE {table} SET actor_name = 'x' WHERE id = %s", f"DELETE FROM {table} WHERE id = %s"):  # noqa: S608
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [recorded.pk])
    assert AuditEvent.objects.get().actor_name == "Maija"


@pytest.fixture
def auditor(client):
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name=AUDIT_READER_GROUP))
    client.force_login(user)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"  # the admin has no language prefix
    return user


def test_audit_admin__read_only_for_auditors(client, auditor) -> None:
    recorded = event(actor_name="Maija")
    changelist = reverse("admin:partners_auditevent_changelist")
    assert client.get(changelist).status_code == 200
    assert client.get(reverse("admin:partners_auditevent_add")).status_code == 403
    assert (
        client.post(reverse("admin:partners_auditevent_delete", args=[recorded.pk]), {"post": "yes"}).status_code == 403
    )
    detail = client.get(reverse("admin:partners_auditevent_change", args=[recorded.pk]))
    assert detail.status_code == 200
    assert 'name="actor_name"' not in detail.content.decode()  # no editable field


def test_audit_admin__filters_by_actor_organisation_action_and_date(client, auditor) -> None:
    maija = UserFactory(first_name="Maija", last_name="M")
    event(actor=maija, actor_name="Maija M", organisation_business_id="0201256-6", organisation_name="Helsinki")
    event(actor=maija, actor_name="Maija M", organisation_business_id="0201256-6", organisation_name="Helsinki")
    event(actor_name="Other", organisation_business_id="0211675-2", organisation_name="Tampere")
    changelist = reverse("admin:partners_auditevent_changelist")
    by_actor = client.get(changelist, {"actor": maija.pk})
    by_organisation = client.get(changelist, {"organisation": "0211675-2"})
    by_action = client.get(changelist, {"action__exact": "logout"})
    today = clock.localnow().date()
    by_date = client.get(
        changelist, {"created_at__gte": str(today), "created_at__lt": str(today + dt.timedelta(days=1))}
    )
    assert by_actor.context["cl"].result_count == 2
    assert by_organisation.context["cl"].result_count == 1
    assert by_action.context["cl"].result_count == 0
    assert by_date.context["cl"].result_count == 3
    filters = {
        spec.title: [choice["display"] for choice in spec.choices(by_actor.context["cl"])]
        for spec in by_actor.context["cl"].filter_specs
    }
    assert filters["actor"].count("Maija M") == 1  # each actor listed once, however many events
    assert filters["organisation"].count("Helsinki (0201256-6)") == 1


def test_audit_admin__who_handled_this_customer__post_only_and_code_not_echoed(client, auditor) -> None:
    customer = Customer.objects.create(identity_code=OTHER_TEST_CODE, first_name="Asta", last_name="Asiakas")
    event(
        customer=customer, actor_name="Maija M", organisation_name="Helsinki", action=AuditEvent.Action.TERMS_ACCEPTED
    )
    event(actor_name="Somebody", organisation_name="Tampere")
    search = reverse("admin:partners_auditevent_customer")
    page = client.get(search)
    assert page.status_code == 200
    assert 'method="post"' in page.content.decode()
    response = client.post(search, {"identity_code": OTHER_TEST_CODE.lower()})
    html = response.content.decode()
    assert response.status_code == 200
    assert "Maija M" in html
    assert "Somebody" not in html
    assert OTHER_TEST_CODE not in html
    assert OTHER_TEST_CODE.lower() not in html
    unknown = client.post(search, {"identity_code": TEST_CODE})
    assert "No one has handled" in unknown.content.decode()
    malformed = client.post(search, {"identity_code": "not-a-code"})
    assert malformed.status_code == 200
    assert malformed.context["form"].errors["identity_code"]


def test_audit_admin__who_handled_this_customer__each_look_up_is_itself_in_the_customers_trail(client, auditor) -> None:
    """Looking up who handled a person (by identity code, as often as one liked) left no trace: an audit reader could
    learn unseen who is a client of which social services. Each look-up is now an event on that customer, by the
    keyed index (never the code), also for a person nobody has opened; and the next look-up shows it."""
    customer = Customer.objects.create(identity_code=OTHER_TEST_CODE, first_name="Asta", last_name="Asiakas")
    search = reverse("admin:partners_auditevent_customer")

    client.post(search, {"identity_code": OTHER_TEST_CODE})
    client.post(search, {"identity_code": TEST_CODE})  # nobody's customer
    again = client.post(search, {"identity_code": OTHER_TEST_CODE}).content.decode()

    looked_up = AuditEvent.objects.filter(action=AuditEvent.Action.STAFF_CUSTOMER_SEARCHED).order_by("pk")
    assert [(event.actor, event.customer) for event in looked_up] == [
        (auditor, customer),  # linked, as every event on them: key rotation re-indexes it
        (auditor, None),
        (auditor, customer),
    ]
    assert [event.customer_digest for event in looked_up] == [
        customer.identity_code_digest,
        crypto.digest(TEST_CODE),
        customer.identity_code_digest,
    ]
    assert all(TEST_CODE not in str(event.details) and OTHER_TEST_CODE not in str(event.details) for event in looked_up)
    assert "Staff looked up who handled a customer" in again  # the first look-up, in the second's answer


def test_audit_admin__staff_without_the_group__cannot_read(client) -> None:
    client.force_login(UserFactory(is_staff=True))
    assert client.get(reverse("admin:partners_auditevent_changelist")).status_code == 403
    assert client.post(reverse("admin:partners_auditevent_customer"), {"identity_code": TEST_CODE}).status_code == 403


def test_notice__shown_on_partner_pages_while_valid_in_page_language(client) -> None:
    now = clock.now()
    Notice.objects.create(
        text_fi="Huoltokatko sunnuntaina.",
        text_sv="Serviceavbrott på söndag.",
        text_en="Maintenance break on Sunday.",
        valid_from=now - dt.timedelta(hours=1),
        valid_until=now + dt.timedelta(hours=1),
    )
    Notice.objects.create(
        text_fi="Vanha",
        text_sv="Gammal",
        text_en="Old notice",
        valid_from=now - dt.timedelta(days=2),
        valid_until=now - dt.timedelta(days=1),
    )
    client.force_login(UserFactory(identity_code=TEST_CODE))
    for language, text in [("fi", "Huoltokatko sunnuntaina."), ("sv", "Serviceavbrott på söndag.")]:
        with translation.override(language):
            html = client.get(reverse("partners:work")).content.decode()
        assert text in html
        assert "Old notice" not in html
        assert "Vanha" not in html


def test_notice__named_in_the_page_language__as_the_admin_names_it() -> None:
    """The Finnish admin said "Tiedote "The phone service is closed…" on lisätty": a notice was named by its English."""
    notice = Notice(text_fi="Puhelinpalvelu on suljettu.", text_sv="Telefontjänsten är stängd.", text_en="Closed.")
    for language, name in [
        ("fi", "Puhelinpalvelu on suljettu."),
        ("sv", "Telefontjänsten är stängd."),
        ("en", "Closed."),
    ]:
        with translation.override(language):
            assert str(notice) == name


def test_notice_admin__end_before_start__refused(client) -> None:
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name=SERVICE_ADMIN_GROUP))
    client.force_login(user)
    response = client.post(
        reverse("admin:partners_notice_add"),
        {
            "level": "info",
            "text_fi": "a",
            "text_sv": "b",
            "text_en": "c",
            "valid_from_0": "2026-12-01",
            "valid_from_1": "10:00",
            "valid_until_0": "2026-11-01",
            "valid_until_1": "10:00",
        },
    )
    assert response.status_code == 200
    assert not Notice.objects.exists()


def test_audit_event_record__identity_code_in_details__refused_and_nothing_written() -> None:
    from partners.context import ActingContext, RequestMeta
    from partners.services import audit_event_record

    acting = ActingContext(meta=RequestMeta(request_id="audit-test-0001", ip_address="127.0.0.1"))
    with pytest.raises(ValueError, match="identity codes"):
        audit_event_record(acting=acting, action=AuditEvent.Action.LOGIN, details={"typed": OTHER_TEST_CODE})
    assert not AuditEvent.objects.exists()

    recorded = audit_event_record(acting=acting, action=AuditEvent.Action.LOGIN, details={"step": "start"})
    assert AuditEvent.objects.get().pk == recorded.pk
    assert AuditEvent.objects.get().details == {"step": "start"}


def test_audit_event_record__from_the_acting_context__actor_organisation_and_request_kept() -> None:
    from partners.services import audit_event_record
    from tests.factories import OrganisationFactory, PartnerFactory, acting_for

    partner, organisation = PartnerFactory(first_name="Maija", last_name="Kumppani"), OrganisationFactory()
    acting = acting_for(partner, organisation=organisation, request_id="req-42", ip_address="192.0.2.7")

    recorded = audit_event_record(acting=acting, action=AuditEvent.Action.TERMS_ACCEPTED)
    refused = audit_event_record(
        acting=acting,
        action=AuditEvent.Action.ORGANISATION_NOT_IN_REGISTRY,
        outcome=AuditEvent.Outcome.REFUSED,
        organisation_business_id="0211675-2",
        organisation_name="Tampere",
    )

    recorded.refresh_from_db()
    assert (recorded.actor, recorded.actor_name, recorded.actor_identity_code) == (
        partner,
        "Maija Kumppani",
        partner.identity_code,
    )
    assert (recorded.organisation_business_id, recorded.organisation_name) == (
        organisation.business_id,
        organisation.name,
    )
    assert (recorded.request_id, recorded.ip_address, recorded.outcome) == ("req-42", "192.0.2.7", "success")
    # A refused choice records the organisation that was chosen, not the one the session acts for.
    assert (refused.organisation_business_id, refused.organisation_name, refused.outcome) == (
        "0211675-2",
        "Tampere",
        AuditEvent.Outcome.REFUSED,
    )


def test_audit_event_record__rolled_back_with_the_change_it_records() -> None:
    """Written in the caller's transaction: a change that fails takes its event with it."""
    from partners.services import audit_event_record
    from tests.factories import acting_for

    acting = acting_for()

    def change_that_fails() -> None:
        with transaction.atomic():
            audit_event_record(acting=acting, action=AuditEvent.Action.BOOKING_CANCELLED)
            raise RuntimeError("the change failed after its event was written")

    with pytest.raises(RuntimeError):
        change_that_fails()

    assert not AuditEvent.objects.exists()
