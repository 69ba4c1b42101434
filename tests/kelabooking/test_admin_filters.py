"""Every admin change list filters only by what its admin declares (kelabooking.admin.StrictChangeList): its list
filters, its date hierarchy's drill-down and its search. A lookup on any other field, the model's own hidden columns
included, answers as Django's own bad filters do (`?e=1`), so that no list can be narrowed one character at a time
by what it does not show (a non-disclosure customer's register phone, an identity code's digest)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import Model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bookings.models import Booking, Customer
from bookings.permissions import CAPACITY_ADMIN_GROUP
from kelabooking.admin import StrictAdminMixin, StrictChangeList
from kelabooking.permissions import GROUP_PERMISSIONS
from partners.models import AuditEvent
from tests.factories import CustomerFactory, ServiceLineFactory, UserFactory
from tests.kelabooking.test_admin_groups import REGISTER_PHONE, can, registered_models, staff_client
from tests.kelabooking.test_admin_groups import world as world  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db

# The lookups tried on every field that no filter declares: each would narrow the list by a hidden value.
HIDDEN_LOOKUPS = {"startswith": "1", "exact": "1", "regex": "^.", "isnull": "0"}
NOWHERE = "2001"  # a year of the date hierarchy with nothing in it


def changelist_url(model: type[Model]) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def refused(response, model: type[Model]) -> bool:
    """As Django answers a bad filter: back to the list, with its error flag."""
    return response.status_code == 302 and response["Location"] == f"{changelist_url(model)}?e=1"


@pytest.fixture
def every_filter_shown(world) -> dict[str, Model]:  # noqa: F811 - the fixture imported above
    """The `world`, with what the remaining list filters need to be offered at all: a second service line (a filter
    by a related object offers itself from two), and an audit event with its actor and organisation."""
    ServiceLineFactory()
    AuditEvent.objects.create(
        action=AuditEvent.Action.ORGANISATION_CHOSEN,
        actor=UserFactory(first_name="Helena", last_name="Kumppani"),
        actor_name="Helena Kumppani",
        organisation_business_id="0201256-6",
        organisation_name="Helsingin kaupunki",
    )
    return world


def declared_parameters(changelist: ChangeList) -> set[str]:
    """What the list's admin declares: each list filter's own parameters and the date hierarchy's drill-down."""
    assert len(changelist.filter_specs) == len(changelist.list_filter), "a list filter is not offered: add its data"
    declared = {parameter for spec in changelist.filter_specs for parameter in spec.expected_parameters()}
    if changelist.date_hierarchy:
        declared |= {f"{changelist.date_hierarchy}__{part}" for part in ("year", "month", "day")}
    return declared


def hidden_lookups(model: type[Model], declared: set[str]) -> Iterator[tuple[str, str]]:
    """Every lookup of HIDDEN_LOOKUPS on every concrete field of the model, but the ones a filter declares."""
    for field in model._meta.get_fields():
        if field.concrete:
            for lookup, value in HIDDEN_LOOKUPS.items():
                if f"{field.name}__{lookup}" not in declared:
                    yield f"{field.name}__{lookup}", value


def check_change_list(client: Client, model: type[Model]) -> None:
    """Hidden lookups refused; every choice of every declared filter, the drill-down and the search answered, and
    the filters narrowing the list."""
    url = changelist_url(model)
    page = client.get(url)
    assert page.status_code == 200, url
    changelist = page.context["cl"]
    declared = declared_parameters(changelist)

    answers = {parameter: client.get(url, {parameter: value}) for parameter, value in hidden_lookups(model, declared)}
    assert [f"{url}?{parameter}: {r.status_code}" for parameter, r in answers.items() if not refused(r, model)] == []

    everything = changelist.result_count
    counts = []
    for spec in changelist.filter_specs:
        for choice in list(spec.choices(changelist))[1:]:  # the first is "All"
            response = client.get(url + choice["query_string"])
            assert response.status_code == 200, url + choice["query_string"]
            counts.append(response.context["cl"].result_count)
    if changelist.date_hierarchy:
        response = client.get(url, {f"{changelist.date_hierarchy}__year": NOWHERE})
        assert response.status_code == 200
        counts.append(response.context["cl"].result_count)
    assert all(count <= everything for count in counts)
    if counts and everything:
        assert min(counts) < everything, f"no declared filter of {url} narrows its list"
    for parameters in ({"q": "x"}, {"o": "1"}, {"p": "1"}, {"_facets": "1"}):
        assert client.get(url, parameters).status_code == 200, (url, parameters)


@pytest.mark.parametrize("group", list(GROUP_PERMISSIONS))
def test_admin_change_lists__as_each_group__filter_only_by_what_they_declare(every_filter_shown, group) -> None:
    client = staff_client(group)
    viewed = [model for model in registered_models() if can(group, *model._meta.label_lower.split("."), "view")]
    assert viewed
    for model in viewed:
        check_change_list(client, model)


def test_admin_change_lists__no_group_views__filter_only_by_what_they_declare(
    every_filter_shown, superuser_client
) -> None:
    """The lists only superusers open (users, groups)."""
    viewed = {(app_label, model) for permissions in GROUP_PERMISSIONS.values() for app_label, model in permissions}
    others = [model for model in registered_models() if (model._meta.app_label, model._meta.model_name) not in viewed]
    assert others
    for model in others:
        check_change_list(superuser_client, model)


def test_admin_site__every_registered_model_admin__has_the_strict_change_list(rf) -> None:
    request = rf.get("/admin/")
    lax = [
        model._meta.label
        for model in registered_models()
        if not isinstance(admin.site.get_model_admin(model), StrictAdminMixin)
        or not issubclass(admin.site.get_model_admin(model).get_changelist(request), StrictChangeList)
    ]
    assert lax == []


def test_customer_changelist__register_phone_prefix__refused_instead_of_narrowed_to_the_protected_customer(
    world,  # noqa: F811 - the fixture imported above
) -> None:
    """The reported leak: a non-disclosure customer's register phone, read one digit at a time from the list."""
    CustomerFactory(phone="+358509990000")
    client = staff_client(CAPACITY_ADMIN_GROUP)
    url = changelist_url(Customer)

    # Who has non-disclosure is not a filter (nor a column) any more; a probe by the phone is refused either way.
    assert refused(client.get(url, {"non_disclosure__exact": "1"}), Customer)
    assert refused(client.get(url, {"phone__startswith": REGISTER_PHONE[:7]}), Customer)
    for parameter in ("phone__regex", "email__startswith", "identity_code_digest__startswith"):
        assert refused(client.get(url, {parameter: "^"}), Customer), parameter


@pytest.mark.parametrize("model", [Booking, AuditEvent], ids=lambda model: model._meta.label)
def test_admin_change_list__date_filter_and_drill_down_on_one_field__both_apply(
    every_filter_shown, superuser_client, model
) -> None:
    """The date hierarchy's links keep the filters chosen: the date filter's bounds and the drill-down's together."""
    url = changelist_url(model)
    changelist = superuser_client.get(url).context["cl"]
    dates = next(spec for spec in changelist.filter_specs if isinstance(spec, admin.DateFieldListFilter))
    year = model._default_manager.order_by("pk").values_list(changelist.date_hierarchy, flat=True).first().year
    since, until = (timezone.make_aware(dt.datetime(y, 1, 1)) for y in (year, year + 1))  # noqa: DTZ001 - made aware
    this_year = {dates.lookup_kwarg_since: str(since), dates.lookup_kwarg_until: str(until)}  # as the filter's links

    drilled = superuser_client.get(url, {**this_year, f"{changelist.date_hierarchy}__year": year})
    elsewhere = superuser_client.get(url, {**this_year, f"{changelist.date_hierarchy}__year": NOWHERE})

    assert drilled.status_code == elsewhere.status_code == 200
    assert drilled.context["cl"].result_count > 0
    assert elsewhere.context["cl"].result_count == 0
