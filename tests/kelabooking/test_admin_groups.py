"""Every admin page, opened as each staff group: each group gets exactly its rights, and customers' messages reach
only the groups that handle customers (kelabooking/permissions.py; docs/staff.md, "Staff groups and their rights")."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db.models import Model
from django.http import HttpResponse
from django.test import Client
from django.urls import URLPattern, URLResolver, reverse

from bookings.models import Booking, ClosedDay, OpeningRule
from kelabooking import clock
from kelabooking.message_kinds import message_kind, message_kinds
from kelabooking.models import Message, RetentionRun
from kelabooking.permissions import GROUP_PERMISSIONS
from kelabooking.phone import format_phone
from partners.models import AuditEvent, Notice
from registry.models import RegistrationRequest, SyncRun
from tests.factories import (
    BookingFactory,
    CustomerFactory,
    OrganisationFactory,
    RegistrationRequestFactory,
    ServiceLineFactory,
    SlotFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

STAFF_DOC = Path(__file__).resolve().parents[2] / "docs" / "staff.md"
MESSAGES = "admin:kelabooking_message_changelist"

# What a message is about decides who may read it: a registry decision is for whoever decides registration requests,
# a booking message for whoever handles the customer's bookings.
DECISION_KINDS = set(RegistrationRequest.MessageKind.values)
BOOKING_KINDS = set(Booking.MessageKind.values)
KINDS = {kind.value for kind in message_kinds()}

# A customer with non-disclosure: the register's contact details (never shown to anyone), and the phone and e-mail
# the partner typed for the booking, to which the booking's messages go.
REGISTER_PHONE = "+358405550001"
REGISTER_EMAIL = "rekisteri.suojattu@example.org"
CUSTOMER_NAME = "Suojattunen"
BOOKING_PHONE = "+358405550002"
BOOKING_EMAIL = "varaus.suojattu@example.org"
BOOKING_BODY = "Your telephone appointment with Kela (marker B-7731)"
DECISION_EMAIL = "paatos.yhteyshenkilo@example.org"
DECISION_BODY = "Your organisation was added to the registry (marker D-4417)"

REFUSED = "refused"  # 403, or the admin index's "does not exist" redirect: nothing of the object is shown
# The admin site's own pages, and what any staff user gets.
SITE_PAGES = {
    "index": 200,
    "login": 302,  # signed in already: on to the index
    "password_change": 200,
    "password_change_done": 200,
    "jsi18n": 200,
    "autocomplete": 403,  # without the parameters of a field's autocomplete
}
NOT_WALKED = {"logout"}  # POST only, and it would end the session
# A model admin's pages, and the permission each needs ("view": view or change, as in Django's admin).
STANDARD = {"changelist": "view", "add": "add", "change": "view", "history": "view", "delete": "delete"}
# The custom views: each needs the model's view permission, except these.
CUSTOM = {
    "auth_user_password_change": "change",  # Django's UserAdmin: set a user's password
    "bookings_booking_call_list": "change",  # the capacity administrators' right on bookings, not customer service's
}
CUSTOM_VIEWS = {"bookings_booking_call_list", "partners_auditevent_customer", "registry_organisation_export"}


def can(group: str, app_label: str, model_name: str, action: str) -> bool:
    """What GROUP_PERMISSIONS grants, read as Django's admin does: the change permission lets one view too."""
    actions = GROUP_PERMISSIONS[group].get((app_label, model_name), set())
    return action in actions or (action == "view" and "change" in actions)


def kinds_seen(group: str) -> set[str]:
    """The kinds of message `group` reads in the outbox: those about what it may see."""
    if not can(group, "kelabooking", "message", "view"):
        return set()
    kinds = set()
    if can(group, "registry", "registrationrequest", "view"):
        kinds |= DECISION_KINDS
    if can(group, "bookings", "booking", "view"):
        kinds |= BOOKING_KINDS
    return kinds


def customer_service_group() -> str:
    """The group that handles customers' messages: it sees the bookings and may resend."""
    groups = [
        group
        for group in GROUP_PERMISSIONS
        if can(group, "bookings", "booking", "view") and can(group, "kelabooking", "message", "change")
    ]
    assert groups, "no staff group may resend customers' booking messages"
    return groups[0]


MESSAGE_READERS = [group for group in GROUP_PERMISSIONS if can(group, "kelabooking", "message", "view")]
NOT_RESENDING = [group for group in GROUP_PERMISSIONS if not can(group, "kelabooking", "message", "change")]


def make_message(kind: str, channel: str, recipient: str, body: str, **fields) -> Message:
    return Message.objects.create(
        **{
            "key": f"test:{kind}:{channel}",
            "kind": kind,
            "channel": channel,
            "recipient": recipient,
            "language": "en",
            "subject": "Kela" if channel == Message.Channel.EMAIL else "",
            "body": body,
            "status": Message.Status.FAILED,
            "attempts": 8,
            "last_error": "gateway refused",
            "next_attempt_at": clock.now(),
            **fields,
        }
    )


@pytest.fixture
def world() -> dict[str, Model]:
    """An object of every model in the admin, and a message of every kind."""
    organisation = OrganisationFactory()
    registration = RegistrationRequestFactory(contact_email=DECISION_EMAIL)
    SyncRun.objects.create()
    RetentionRun.objects.create(started_at=clock.now(), finished_at=clock.now())
    line = ServiceLineFactory()
    today = clock.localnow().date()
    OpeningRule.objects.create(
        service_line=line,
        language="fi",
        weekday=0,
        opens_at=dt.time(9),
        closes_at=dt.time(16),
        agents=2,
        valid_from=today,
    )
    ClosedDay.objects.create(date_from=today, date_until=today, reason="Juhannus")
    customer = CustomerFactory.non_disclosure(phone=REGISTER_PHONE, email=REGISTER_EMAIL, last_name=CUSTOMER_NAME)
    booking = BookingFactory.confirmed(
        slot=SlotFactory(service_line=line),
        customer=customer,
        organisation=organisation,
        contact_phone=BOOKING_PHONE,
        contact_email=BOOKING_EMAIL,
    )
    AuditEvent.objects.create(
        action=AuditEvent.Action.BOOKING_CONFIRMED, customer=customer, booking=booking, actor_name="Helena Kumppani"
    )
    Notice.objects.create(
        text_fi="Huolto",
        text_sv="Underhåll",
        text_en="Maintenance",
        valid_from=clock.now(),
        valid_until=clock.now() + dt.timedelta(hours=1),
    )
    for kind in sorted(BOOKING_KINDS):
        make_message(kind, Message.Channel.SMS, BOOKING_PHONE, BOOKING_BODY)
        make_message(kind, Message.Channel.EMAIL, BOOKING_EMAIL, BOOKING_BODY)
    decision = make_message(
        RegistrationRequest.MessageKind.DECISION, Message.Channel.EMAIL, DECISION_EMAIL, DECISION_BODY
    )
    # One waiting to be sent (the count above the list), and one from long ago (the date hierarchy's years).
    Message.objects.filter(kind=Booking.MessageKind.CHANGE, channel=Message.Channel.SMS).update(
        status=Message.Status.PENDING, attempts=1
    )
    Message.objects.filter(kind=Booking.MessageKind.REMINDER, channel=Message.Channel.SMS).update(
        created_at=dt.datetime(2019, 5, 6, 12, tzinfo=dt.UTC)
    )
    assert set(Message.objects.values_list("kind", flat=True)) == KINDS
    return {"booking": booking, "registration": registration, "decision": decision}


def staff_client(group: str) -> Client:
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


def _named_patterns(patterns: list, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _named_patterns(pattern.url_patterns, prefix + str(pattern.pattern))
        elif pattern.name:
            yield prefix + str(pattern.pattern), pattern


def registered_models() -> list[type[Model]]:
    return [model for model in apps.get_models() if admin.site.is_registered(model)]


def _objects(model: type[Model]) -> list[Model]:
    """Every message (who sees one depends on its kind); one object of every other model."""
    objects = list(model._default_manager.order_by("pk")) if model is Message else [model._default_manager.first()]
    assert objects[0] is not None, f"no {model._meta.label} to open: build one in the `world` fixture"
    return objects


def admin_pages(group: str) -> Iterator[tuple[str, str, int | str]]:
    """(URL name, URL, what `group` should get) for every named URL of the admin site, filled in for the data."""
    models = {f"{model._meta.app_label}/{model._meta.model_name}/": model for model in registered_models()}
    for route, pattern in _named_patterns(admin.site.get_urls()):
        name = pattern.name
        model = next((model for prefix, model in models.items() if route.startswith(prefix)), None)
        if model is None:
            yield from _site_pages(group, name, list(models.values()))
            continue
        opts = model._meta
        needs = next(
            (need for page, need in STANDARD.items() if name == f"{opts.app_label}_{opts.model_name}_{page}"),
            CUSTOM.get(name, "view"),
        )
        allowed = can(group, opts.app_label, opts.model_name, needs)
        params = re.findall(r"<(?:\w+:)?(\w+)>", route)
        if not params:
            yield name, reverse(f"admin:{name}"), 200 if allowed else REFUSED
            continue
        for obj in _objects(model):
            shown = allowed and (model is not Message or obj.kind in kinds_seen(group))
            yield name, reverse(f"admin:{name}", kwargs=dict.fromkeys(params, obj.pk)), 200 if shown else REFUSED


def _site_pages(group: str, name: str, models: list[type[Model]]) -> Iterator[tuple[str, str, int | str]]:
    if name in SITE_PAGES:
        yield name, reverse(f"admin:{name}"), SITE_PAGES[name]
    elif name == "app_list":
        for app_label in sorted({model._meta.app_label for model in models}):
            has_any = any(app == app_label and actions for (app, _model), actions in GROUP_PERMISSIONS[group].items())
            yield name, reverse("admin:app_list", kwargs={"app_label": app_label}), 200 if has_any else 404
    elif name == "view_on_site":
        for model in models:
            content_type = ContentType.objects.get_for_model(model)
            for obj in _objects(model):
                url = reverse("admin:view_on_site", args=[content_type.pk, obj.pk])
                yield name, url, 404  # no model in the admin has a page of its own on the site
    elif name not in NOT_WALKED:
        pytest.fail(f"the admin URL {name!r} is not classified: add it to SITE_PAGES with what staff should get")


def walk(client: Client, group: str) -> list[tuple[str, str, int | str, HttpResponse]]:
    """GET every admin page as `group`."""
    return [(name, url, expected, client.get(url)) for name, url, expected in admin_pages(group)]


def shows_phone(text: str, phone: str) -> bool:
    """The number anywhere in `text`, as stored (+358…) or as shown to staff (040 …), however grouped."""
    national = "0" + phone.removeprefix("+358")
    return any(re.search(r"[\s-]?".join(map(re.escape, form)), text) for form in (phone, national))


def answered_as(response: HttpResponse, expected: int | str) -> bool:
    if expected == REFUSED:
        return response.status_code == 403 or (
            response.status_code == 302 and response["Location"] == reverse("admin:index")
        )
    return response.status_code == expected


def test_message_kinds__each_is_about_a_booking_or_a_registry_decision() -> None:
    assert KINDS == BOOKING_KINDS | DECISION_KINDS
    assert not BOOKING_KINDS & DECISION_KINDS


@pytest.mark.parametrize("group", list(GROUP_PERMISSIONS))
def test_admin_pages__as_each_group__open_exactly_where_the_group_has_the_right(world, group) -> None:
    pages = walk(staff_client(group), group)

    wrong = [
        f"{url}: expected {expected}, got {response.status_code}"
        for _name, url, expected, response in pages
        if not answered_as(response, expected)
    ]
    assert wrong == []
    names = {name for name, *_rest in pages}
    assert names >= CUSTOM_VIEWS
    assert {name for name, _url, expected, _r in pages if expected == 200} >= {"index", "app_list"}
    index = next(response for name, _url, _e, response in pages if name == "index")
    listed = {
        (model["model"]._meta.app_label, model["model"]._meta.model_name)
        for app in index.context["app_list"]
        for model in app["models"]
    }
    assert listed == {key for key, actions in GROUP_PERMISSIONS[group].items() if actions}


@pytest.mark.parametrize("group", list(GROUP_PERMISSIONS))
def test_admin_pages__as_each_group__show_customers_messages_only_to_those_who_handle_customers(world, group) -> None:
    pages = walk(staff_client(group), group)
    text = "\n".join(response.content.decode() for *_rest, response in pages)

    handles_customers = can(group, "bookings", "booking", "view")
    decides_registrations = can(group, "registry", "registrationrequest", "view")
    reads_messages = can(group, "kelabooking", "message", "view")
    assert shows_phone(text, BOOKING_PHONE) is handles_customers
    assert (BOOKING_EMAIL in text) is handles_customers
    assert (BOOKING_BODY in text) is (handles_customers and reads_messages)
    assert (DECISION_EMAIL in text) is decides_registrations
    assert (DECISION_BODY in text) is (decides_registrations and reads_messages)
    # A customer with non-disclosure: the register's own contact details, to nobody; the name only to those who may
    # view customers or the audit trail's events about them (customer service reads bookings for their messages,
    # which name no customer); and who has non-disclosure, to nobody.
    assert not shows_phone(text, REGISTER_PHONE)
    assert REGISTER_EMAIL not in text
    names_customers = can(group, "bookings", "customer", "view") or can(group, "partners", "auditevent", "view")
    assert (CUSTOMER_NAME in text) is names_customers
    digest = world["booking"].customer.identity_code_digest
    assert AuditEvent.objects.filter(customer_digest=digest).exists()
    assert digest.split(":")[-1] not in text  # the keyed index names one person beyond the customer's removal
    assert "non-disclosure" not in text.lower()


@pytest.mark.parametrize("group", MESSAGE_READERS)
def test_message_changelist__as_each_group__lists_counts_and_dates_only_the_kinds_it_sees(world, group) -> None:
    client = staff_client(group)
    seen = kinds_seen(group)
    visible = Message.objects.filter(kind__in=seen)

    page = client.get(reverse(MESSAGES), {"_facets": "1"})
    assert page.status_code == 200
    changelist = page.context["cl"]
    assert {message.kind for message in changelist.result_list} == seen
    assert changelist.result_count == changelist.full_result_count == visible.count()
    assert page.context["pending_count"] == visible.filter(status=Message.Status.PENDING).count()
    filters = {str(spec.title): list(spec.choices(changelist)) for spec in changelist.filter_specs}
    counted = [re.fullmatch(r"(.*) \((\d+)\)", str(choice["display"])) for choice in filters["status"][1:]]
    assert sum(int(match[2]) for match in counted) == visible.count()
    kinds_offered = {re.sub(r" \(\d+\)$", "", str(choice["display"])) for choice in filters["kind"][1:]}
    assert kinds_offered == {str(message_kind(kind).label) for kind in seen}
    assert ("created_at__year=2019" in page.content.decode()) is bool(seen & BOOKING_KINDS)

    found = client.get(reverse(MESSAGES), {"q": BOOKING_PHONE}).context["cl"]
    assert found.result_count == visible.filter(recipient=BOOKING_PHONE).count()
    drilled = client.get(reverse(MESSAGES), {"created_at__year": "2019"}).context["cl"]
    assert drilled.result_count == visible.filter(created_at__year=2019).count()


@pytest.mark.parametrize("group", MESSAGE_READERS)
def test_message_changelist__resend__offered_only_with_the_change_permission(world, group) -> None:
    page = staff_client(group).get(reverse(MESSAGES))
    action_form = page.context["action_form"]  # None when the list offers no action at all
    offered = dict(action_form.fields["action"].choices) if action_form else {}
    assert ("resend" in offered) is can(group, "kelabooking", "message", "change")


@pytest.mark.parametrize("group", NOT_RESENDING)
def test_message_changelist__resend_posted_without_the_change_permission__changes_nothing(world, group) -> None:
    before = set(Message.objects.values_list("pk", "status", "attempts"))
    selected = list(Message.objects.values_list("pk", flat=True))
    response = staff_client(group).post(reverse(MESSAGES), {"action": "resend", "_selected_action": selected})
    assert response.status_code in (200, 302, 403)  # the list again, "no action selected", or no list at all
    assert set(Message.objects.values_list("pk", "status", "attempts")) == before


def test_message_changelist__resend_by_customer_service__queues_again_only_the_messages_it_sees(world) -> None:
    selected = list(Message.objects.values_list("pk", flat=True))
    response = staff_client(customer_service_group()).post(
        reverse(MESSAGES), {"action": "resend", "_selected_action": selected}
    )
    assert response.status_code == 302
    statuses = dict(Message.objects.values_list("pk", "status"))
    assert statuses[world["decision"].pk] == Message.Status.FAILED
    booking_statuses = set(Message.objects.filter(kind__in=BOOKING_KINDS).values_list("status", flat=True))
    assert booking_statuses == {Message.Status.PENDING}


def test_message_change_page__of_a_kind_not_seen__answers_as_a_missing_message(world) -> None:
    registry_admins = next(group for group in MESSAGE_READERS if kinds_seen(group) == DECISION_KINDS)
    booking_message = Message.objects.filter(kind=Booking.MessageKind.CONFIRMATION).first()
    for group, hidden in [(registry_admins, booking_message), (customer_service_group(), world["decision"])]:
        client = staff_client(group)
        for page in ("change", "history"):
            missing = client.get(reverse(f"admin:kelabooking_message_{page}", args=[999_999]))
            response = client.get(reverse(f"admin:kelabooking_message_{page}", args=[hidden.pk]))
            assert (response.status_code, response.get("Location")) == (missing.status_code, missing.get("Location"))
            assert (response.status_code, response["Location"]) == (302, reverse("admin:index"))


def test_message_change_page__for_customer_service__stays_read_only(world) -> None:
    message = Message.objects.filter(kind=Booking.MessageKind.CONFIRMATION, channel=Message.Channel.SMS).get()
    client = staff_client(customer_service_group())
    url = reverse("admin:kelabooking_message_change", args=[message.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert format_phone(BOOKING_PHONE) in page.content.decode()  # the number in the form the list shows it
    assert 'name="_save"' not in page.content.decode()
    response = client.post(url, {"recipient": "+358400000000", "status": "sent", "_save": "Save"})
    assert response.status_code == 403
    message.refresh_from_db()
    assert (message.recipient, message.status) == (BOOKING_PHONE, Message.Status.FAILED)


def _staff_doc_section() -> str:
    text = STAFF_DOC.read_text(encoding="utf-8")
    match = re.search(r"^## Staff groups and their rights\n(.*?)(?=^## |\Z)", text, flags=re.MULTILINE | re.DOTALL)
    assert match, "docs/staff.md has no section 'Staff groups and their rights'"
    return match[1]


def _rows(section: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("|") and not re.fullmatch(r"[|\s:-]+", line)
    ]


def test_staff_doc__lists_every_group_with_exactly_its_rights_and_the_messages_it_reads() -> None:
    rows = _rows(_staff_doc_section())
    groups = {row[0]: row for row in rows if row[0] in GROUP_PERMISSIONS and len(row) == 3}
    assert set(groups) == set(GROUP_PERMISSIONS)
    for group, row in groups.items():
        assert set(re.findall(r"`(\w+)`", row[2])) == kinds_seen(group), group

    rights: dict[str, dict[tuple[str, str], set[str]]] = {group: {} for group in GROUP_PERMISSIONS}
    for row in rows:
        model = re.search(r"`(\w+)\.(\w+)`", row[1]) if len(row) == 7 else None
        if model and row[0] in rights:
            ticked = {
                action for action, cell in zip(["view", "add", "change", "delete"], row[2:6], strict=True) if cell
            }
            rights[row[0]][(model[1], model[2])] = ticked
    assert rights == GROUP_PERMISSIONS
