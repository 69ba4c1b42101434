"""Property tests: every form and every URL or query parameter that takes input, fed generated input.

Whatever comes in (NUL bytes, any script's digits, very long strings, invalid UTF-8 in a query, malformed and
valid-but-wrong identity codes and Y-tunnus, phone numbers of every shape, negative, huge and non-numeric ids), the
answer is a 2xx, 3xx or 4xx page, and a refused input leaves the database as it was. CI runs a bounded number of
examples with a fixed seed (the `ci` profile, tests/conftest.py); `make fuzz` runs many more.
"""

from __future__ import annotations

import re
import sys
import unicodedata
import uuid
from urllib.parse import quote, quote_from_bytes

import pytest
from django.contrib import admin
from django.core.cache import cache
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bookings.models import Booking, Customer
from bookings.services import customer_find_or_create
from kelabooking.identity import normalise_identity_code
from partners.models import AuditEvent
from registry.models import RegistrationRequest
from tests.acting import acting_of, sign_in
from tests.bookings.test_journey import CUSTOMER_CODE, slot_at, url
from tests.bookings.test_journey import customer as customer  # noqa: F401 - fixtures
from tests.bookings.test_journey import line as line  # noqa: F401
from tests.bookings.test_journey import organisation as organisation  # noqa: F401
from tests.bookings.test_journey import partner as partner  # noqa: F401
from tests.factories import acting_for
from tests.kelabooking.test_admin_filters import declared_parameters
from tests.kelabooking.test_admin_filters import every_filter_shown as every_filter_shown  # noqa: F401 - fixtures
from tests.kelabooking.test_admin_groups import registered_models
from tests.kelabooking.test_admin_groups import world as world  # noqa: F401

pytestmark = pytest.mark.django_db

# Function-scoped fixtures (the client, the partner) are shared by a test's examples on purpose: each example resets
# what it depends on.
examples = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

UNICODE_DIGITS = st.characters(categories=["Nd"])
# Every script's way of writing each decimal digit (Arabic-Indic, full-width, Devanagari, mathematical bold …).
DIGITS_BY_VALUE = {
    value: [
        char
        for char in map(chr, range(sys.maxunicode + 1))
        if unicodedata.category(char) == "Nd" and unicodedata.digit(char) == value
    ]
    for value in range(10)
}
VALID_CODES = ["150385-9013", "241170-944V", "020202A977X", "010594Y9021", "131052-308T"]


@st.composite
def lookalike_identity_codes(draw) -> str:
    """A valid code with some of its digits written in another script (Arabic-Indic, full-width, Devanagari …)."""
    code = draw(st.sampled_from(VALID_CODES))
    chars = []
    for char in code:
        if char.isdigit() and draw(st.booleans()):
            chars.append(draw(st.sampled_from(DIGITS_BY_VALUE[int(char)])))
        else:
            chars.append(char)
    return "".join(chars)


identity_codes = st.one_of(
    st.sampled_from(VALID_CODES),
    lookalike_identity_codes(),
    st.from_regex(r"[0-9]{6}[-+A-FU-Y][0-9]{3}[0-9A-Z]", fullmatch=True),  # valid shape, mostly wrong checksum
    st.builds(lambda code: code.lower(), st.sampled_from(VALID_CODES)),
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["0", "-1", "1e9", "0x10", "NaN", "٣", "１２", "9" * 400]),
)
phones = st.one_of(
    st.from_regex(r"\+?[0-9 ()\-.]{0,25}", fullmatch=True),
    st.sampled_from(["040 123 4567", "+358401234567", "+46701234567", "00358401234567", "+999", "1" * 40]),
)
business_ids = st.one_of(
    st.from_regex(r"[0-9]{7}-[0-9]", fullmatch=True),
    st.sampled_from(["0201256-6", "FI02012566", "٠٢٠١٢٥٦-٦", "0201256 6", "201256-6"]),
)
nasty_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=2000, max_size=6000),
    st.text(alphabet=UNICODE_DIGITS, min_size=1, max_size=12),
    st.sampled_from(["\x00", "a\x00b", "%00", "\u202e", "<script>alert(1)</script>", "' OR 1=1 --", "\r\n", " "]),
)
any_input = st.one_of(nasty_text, identity_codes, numbers, phones, business_ids)
# A query string's raw bytes, percent-encoded: invalid UTF-8 and lone surrogates' encodings included.
raw_query_values = st.one_of(
    st.binary(max_size=30).map(quote_from_bytes),
    any_input.map(lambda text: quote(text, safe="")),
    st.sampled_from(["%ED%A0%80", "%FF", "%C0%AF", "0001-01-01", "9999-12-31", "2026-02-30"]),
)


# What a list filter, a date drill-down, a page number or an ordering may be sent instead of what it expects.
bad_parameter_values = st.one_of(
    raw_query_values,
    st.one_of(
        st.sampled_from(["abc", "1.5", "1,5", "-0", "1e400", "True", "None", "[]", "0", "٣", "１２"]),
        st.sampled_from(["9999", "10000", "0000-00-00", "0001-01-01", "9999-12-31", "10000-01-01", "2026-13-01"]),
        st.floats().map(str),
        st.integers(min_value=2**31).map(str) | st.integers(max_value=-(2**31)).map(str),
        st.text(alphabet=UNICODE_DIGITS, min_size=1, max_size=6),
        st.text(min_size=1000, max_size=3000),
    ).map(lambda text: quote(text, safe="")),
)
# The change list's own parameters: search, ordering, page.
CHANGE_LIST_PARAMETERS = ["q", "o", "p"]
# What the admin's pages read besides: the list's "show all", error flag and facets, the popups' parameters, the
# add page's initial values (named as the model's fields and relations), the change pages' way back to the filtered
# list, the call list's day.
ADMIN_PAGE_PARAMETERS = ["all", "e", "_facets", "_popup", "_to_field", "_changelist_filters", "date"]


def answered(response) -> int:
    assert response.status_code < 500, response.status_code
    return response.status_code


# --- Public pages ---------------------------------------------------------------------------------------------------


@examples
@given(
    kind=any_input | st.sampled_from(["add", "remove"]),
    business_id=business_ids | any_input,
    name=any_input,
    justification=any_input,
    contact_name=any_input,
    email=any_input | st.emails(),
    phone=phones | any_input,
)
def test_registry_request__any_input__answered_and_refusals_write_nothing(
    client, kind, business_id, name, justification, contact_name, email, phone
) -> None:
    cache.clear()  # the rate limit is not under test here
    before = RegistrationRequest.objects.count()
    data = {
        "kind": kind,
        "business_id": business_id,
        "organisation_name": name,
        "justification": justification,
        "contact_name": contact_name,
        "contact_email": email,
        "contact_phone": phone,
    }
    status = answered(client.post("/en/registry/request/", data))
    if status != 302:
        assert RegistrationRequest.objects.count() == before


@examples
@given(path=st.sampled_from(["/en/", "/fi/", "/sv/registry/request/", "/en/accessibility/"]), query=raw_query_values)
def test_public_pages__any_query__answered(client, path, query) -> None:
    answered(client.get(f"{path}?q={query}&{query}=1"))


@examples
@given(error=any_input | identity_codes, state=raw_query_values, code=raw_query_values)
def test_oidc_callback__any_parameters__answered_without_a_session(client, error, state, code) -> None:
    answered(client.get(f"/oidc/callback/?error={quote(error, safe='')}&state={state}&code={code}"))
    assert not AuditEvent.objects.filter(details__icontains="0385").exists()


# --- The partner's pages --------------------------------------------------------------------------------------------


@examples
@given(typed=identity_codes | any_input)
def test_customer_step__any_identity_code__answered_and_refusals_write_nothing(
    client, partner, organisation, typed
) -> None:
    sign_in(client, partner, organisation=organisation)  # again for each input: no customer yet
    before = Customer.objects.count()
    status = answered(client.post(url("bookings:customer"), {"identity_code": typed}))
    if status != 302:
        assert Customer.objects.count() == before
    else:
        stored = Customer.objects.get(pk=acting_of(client).customer_id)
        assert stored.identity_code == normalise_identity_code(typed)


@examples
@given(typed=lookalike_identity_codes())
def test_customers__a_code_in_any_script__never_a_second_person(partner, organisation, typed) -> None:
    """However a stored customer's code is written, it names that customer or is refused: never a second row."""
    for code in VALID_CODES:
        if not Customer.objects.with_identity_code(code).exists():
            Customer.objects.create(identity_code=code)
    before = Customer.objects.count()
    try:
        canonical = normalise_identity_code(typed, allow_temporary=True)
    except Exception:  # noqa: BLE001 - the field's error: refused, as it must be unless all digits are ASCII
        assert not typed.isascii()
    else:
        customer = customer_find_or_create(
            acting=acting_for(partner, organisation=organisation), identity_code=canonical
        )
        assert customer.identity_code == typed.upper()
    assert Customer.objects.count() == before
    assert (
        len({normalise_identity_code(c.identity_code, allow_temporary=True) for c in Customer.objects.all()}) == before
    )


@examples
@given(
    service_line=numbers | any_input,
    language=any_input | st.sampled_from(["fi", "sv", "en"]),
    needed=any_input,
    interpreter=any_input | st.sampled_from(["so", "ar", "xx"]),
)
def test_matter_step__any_input__answered(
    client, partner, organisation, customer, line, service_line, language, needed, interpreter
):
    sign_in(client, partner, organisation=organisation, customer=customer)
    data = {"service_line": service_line, "language": language, "interpreter_needed": needed}
    answered(client.post(url("bookings:matter"), data | {"interpreter_language": interpreter}))


@pytest.fixture
def at_time_step(client, partner, customer, line):
    client.post(url("bookings:customer"), {"identity_code": CUSTOMER_CODE})
    client.post(url("bookings:matter"), {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"})
    return slot_at(line)


@examples
@given(slot=numbers | any_input, week=raw_query_values)
def test_time_step__any_slot_or_week__answered(client, at_time_step, slot, week) -> None:
    answered(client.get(f"{url('bookings:time')}?week={week}"))
    answered(client.get(f"{url('bookings:time')}?week={week}", HTTP_HX_REQUEST="true"))
    before = Booking.objects.count()
    status = answered(client.post(url("bookings:time"), {"slot": slot}))
    if status != 302:
        assert Booking.objects.count() <= before  # a refused pick holds nothing (an earlier hold may be released)


@examples
@given(phone=phones | any_input, email=any_input | st.emails(), description=any_input, first=any_input, last=any_input)
def test_contact_and_check__any_input__answered_and_nothing_confirmed(
    client, at_time_step, phone, email, description, first, last
) -> None:
    client.post(url("bookings:time"), {"slot": at_time_step.pk})
    data = {"phone": phone, "email": email, "description": description, "first_name": first, "last_name": last}
    answered(client.post(url("bookings:contact"), data))
    answered(client.get(url("bookings:check")))
    answered(client.post(url("bookings:check"), {"hold": phone, "idempotency_key": description}))
    answered(client.post(url("bookings:check"), {"hold": "1", "idempotency_key": str(uuid.uuid4())}))
    assert not Booking.objects.filter(status=Booking.Status.CONFIRMED).exists()


@examples
@given(reference=any_input, reason=any_input)
def test_booking_pages__any_reference__answered(client, at_time_step, reference, reason) -> None:
    quoted = quote(reference, safe="") or "x"
    answered(client.get(f"/en/booking/{quoted}/"))
    answered(client.post(f"/en/booking/{quoted}/cancel/", {"reason": reason}))


# --- The admin's customised pages -----------------------------------------------------------------------------------


@examples
@given(value=raw_query_values, key=st.sampled_from(["date", "actor", "organisation", "created_at__year", "q", "e"]))
def test_admin_pages__any_parameter__answered(superuser_client, value, key) -> None:
    for name in (
        "admin:bookings_booking_call_list",
        "admin:bookings_booking_changelist",
        "admin:partners_auditevent_changelist",
        "admin:registry_organisation_export",
        "admin:registry_organisation_changelist",
        "admin:kelabooking_message_changelist",
    ):
        answered(superuser_client.get(f"{reverse(name)}?{key}={value}"))
    answered(superuser_client.get(f"{reverse('admin:bookings_booking_changelist')}?slot__starts_at__year={value}"))


@examples
@given(typed=identity_codes | any_input)
def test_admin_customer_search__any_identity_code__answered(superuser_client, typed) -> None:
    answered(superuser_client.post(reverse("admin:partners_auditevent_customer"), {"identity_code": typed}))


@pytest.fixture
def admin_pages(superuser_client, every_filter_shown, model) -> tuple[list[str], list[list[str]], list[str]]:
    """The admin's pages of `model` (with its first object where they need one), the change list first; the
    parameters of each filter the change list declares (a list filter's own, the date drill-down's) and its own
    (search, ordering, page); and every query parameter any of the pages reads."""
    model_admin = admin.site.get_model_admin(model)
    first = model._default_manager.order_by("pk").first()
    pages = []
    for pattern in model_admin.get_urls():
        if pattern.name:
            arguments = re.findall(r"<(?:\w+:)?(\w+)>", str(pattern.pattern))
            pages.append(reverse(f"admin:{pattern.name}", kwargs=dict.fromkeys(arguments, first.pk)))
    changelist = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    pages.sort(key=lambda page: page != changelist)
    listed = superuser_client.get(changelist).context["cl"]
    declared = declared_parameters(listed)  # every list filter offered
    filters = [spec.expected_parameters() for spec in listed.filter_specs]
    if listed.date_hierarchy:
        filters.append([f"{listed.date_hierarchy}__{part}" for part in ("year", "month", "day")])
    filters.append(CHANGE_LIST_PARAMETERS)
    fields = [field.name for field in model._meta.get_fields()]
    return pages, filters, sorted(declared) + CHANGE_LIST_PARAMETERS + ADMIN_PAGE_PARAMETERS + fields


@pytest.mark.parametrize("model", registered_models(), ids=lambda model: model._meta.label)
@settings(examples, max_examples=max(1, settings.default.max_examples // 3))  # each example is some ten requests
@given(data=st.data())
def test_admin_pages__any_value_of_any_parameter__answered(superuser_client, admin_pages, model, data) -> None:
    """Each filter of each change list (all its parameters at once) fed values it cannot take, with facet counts or
    without; then any page of the admin fed any of the parameters the pages read."""
    pages, filters, parameters = admin_pages
    for keys in filters:
        query = [f"{key}={value}" for key in keys for value in data.draw(st.lists(bad_parameter_values, max_size=2))]
        if data.draw(st.booleans(), label="facets"):
            query.append("_facets=1")
        answered(superuser_client.get(f"{pages[0]}?{'&'.join(query)}"))
    for page, key, value in data.draw(
        st.lists(st.tuples(st.sampled_from(pages), st.sampled_from(parameters), bad_parameter_values), max_size=3)
    ):
        answered(superuser_client.get(f"{page}?{key}={value}"))
