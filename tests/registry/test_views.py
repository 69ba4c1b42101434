"""The public registration request page: every bad input gets a translated field error and nothing is saved."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import translation

from registry.models import RegistrationRequest
from tests.factories import OrganisationFactory, RegistrationRequestFactory, next_business_id

pytestmark = pytest.mark.django_db


def url(language: str = "en", name: str = "registry:request") -> str:
    with translation.override(language):
        return reverse(name)


def valid_data(**overrides) -> dict[str, str]:
    return {
        "kind": "add",
        "business_id": next_business_id(),
        "organisation_name": "Tukiyhdistys ry",
        "justification": "We help people with complicated benefit matters.",
        "contact_name": "Maija Meikäläinen",
        "contact_email": "maija@example.org",
        "contact_phone": "",
        **overrides,
    }


@pytest.mark.parametrize("language", ["fi", "sv", "en"])
def test_registration_request_page__get__shows_the_form(client, language: str) -> None:
    response = client.get(url(language))
    assert response.status_code == 200
    assert f'<html lang="{language}">' in response.content.decode()
    assert 'name="business_id"' in response.content.decode()


def test_registration_request_page__post_valid__saves_and_redirects(client) -> None:
    data = valid_data(business_id="0201256 6", contact_phone="040 123 4567")
    response = client.post(url("sv"), data)
    assert response.status_code == 302
    assert response["Location"] == url("sv", "registry:request-sent")
    registration = RegistrationRequest.objects.get()
    assert (registration.business_id, registration.language, registration.contact_phone) == (
        "0201256-6",
        "sv",
        "+358401234567",
    )
    assert client.get(response["Location"]).status_code == 200


def test_registration_request_page__phone_only__is_enough(client) -> None:
    response = client.post(url(), valid_data(contact_email="", contact_phone="+46 70 123 45 67"))
    assert response.status_code == 302
    assert RegistrationRequest.objects.get().contact_phone == "+46701234567"


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("business_id", "0201256-7", "Check the last digit"),
        ("business_id", "FI02012566", "in the form 1234567-8"),
        ("business_id", "<script>x</script>", "in the form 1234567-8"),
        ("organisation_name", "<script>alert(1)</script>" * 9, "at most 200 characters"),
        ("business_id", "", "Give the organisation&#x27;s business ID (Y-tunnus)."),
        ("organisation_name", "x" * 201, "at most 200 characters"),
        ("justification", "", "Tell us why the organisation needs to book telephone times."),
        ("justification", "x" * 2001, "at most 2000 characters"),
        ("contact_email", "not-an-email", "valid email address"),
        ("contact_phone", "123", "does not exist"),
        ("contact_phone", "phone me", "Enter a telephone number"),
        ("contact_name", "Maija\x00", "Null characters are not allowed"),
        ("kind", "delete-everything", "Choose what you request."),
    ],
)
def test_registration_request_page__bad_input__field_error_and_nothing_saved(
    client, field: str, value: str, error: str
) -> None:
    response = client.post(url(), valid_data(**{field: value}))
    assert response.status_code == 200
    content = response.content.decode()
    assert error in content
    assert f'id="id_{field}_error"' in content or field == "kind"
    assert "<script>alert(1)</script>" not in content  # echoed input is escaped
    assert not RegistrationRequest.objects.exists()


def test_registration_request_page__no_contact__form_error_and_nothing_saved(client) -> None:
    response = client.post(url(), valid_data(contact_email="", contact_phone=""))
    assert "Give an e-mail address or a telephone number" in response.content.decode()
    assert response.context["form"].errors["contact_email"][0].startswith("Give an e-mail")
    assert not RegistrationRequest.objects.exists()


def test_registration_request_page__errors__are_translated(client) -> None:
    response = client.post(url("fi"), valid_data(business_id="123"))
    assert "Anna Y-tunnus muodossa 1234567-8." in response.content.decode()
    response = client.post(url("sv"), valid_data(business_id="123"))
    assert "Ange FO-numret (Y-tunnus) i formen 1234567-8." in response.content.decode()


def test_registration_request_page__duplicate_pending__refused_politely(client) -> None:
    existing = RegistrationRequestFactory()
    response = client.post(url(), valid_data(business_id=existing.business_id))
    assert response.status_code == 200
    assert "already being processed" in response.content.decode()
    assert RegistrationRequest.objects.count() == 1


def test_registration_request_page__add_for_registered_organisation__explains(client) -> None:
    organisation = OrganisationFactory()
    response = client.post(url(), valid_data(business_id=organisation.business_id))
    assert "already in Kela&#x27;s registry" in response.content.decode()
    assert not RegistrationRequest.objects.exists()


def test_registration_request_page__too_many_posts__rate_limited_and_nothing_saved(client, settings) -> None:
    settings.REGISTRATION_REQUEST_RATE_LIMIT = 3
    for _ in range(5):  # validation errors do not count: someone correcting mistakes is never locked out
        assert client.post(url(), valid_data(business_id="bad")).status_code == 200
    for _ in range(3):
        assert client.post(url(), valid_data(business_id=next_business_id())).status_code == 302
    before = RegistrationRequest.objects.count()
    response = client.post(url(), valid_data(business_id=next_business_id()))
    assert response.status_code == 429
    assert "Too many requests" in response.content.decode()
    assert RegistrationRequest.objects.count() == before
    # Another address is not affected.
    response = client.post(url(), valid_data(), REMOTE_ADDR="192.0.2.10")
    assert response.status_code == 302


def test_registration_request_page__honeypot_filled__nothing_saved_and_counted_towards_the_limit(
    client, settings
) -> None:
    settings.REGISTRATION_REQUEST_RATE_LIMIT = 2
    page = client.get(url()).content.decode()
    honeypot = page.split('<div class="honeypot" aria-hidden="true">')[1].split("</div>")[0]
    assert 'name="website"' in honeypot
    assert 'tabindex="-1"' in honeypot  # out of reach for people

    for _ in range(2):  # a robot is answered as if the request went through, and told nothing
        response = client.post(url(), valid_data(website="https://spam.example"))
        assert response["Location"] == url(name="registry:request-sent")
    assert not RegistrationRequest.objects.exists()
    # The robot's refusals count: a real request from the same address now waits for the window.
    assert client.post(url(), valid_data()).status_code == 429
    assert not RegistrationRequest.objects.exists()
    # An empty honeypot (a person) is no refusal.
    assert client.post(url(), valid_data(website=""), REMOTE_ADDR="192.0.2.20").status_code == 302
    assert RegistrationRequest.objects.count() == 1


def test_registration_request_page__rate_limit_behind_proxy__counts_the_forwarded_client(client, settings) -> None:
    settings.REGISTRATION_REQUEST_RATE_LIMIT, settings.NUM_PROXIES = 1, 1
    client.post(url(), valid_data(business_id=next_business_id()), HTTP_X_FORWARDED_FOR="198.51.100.7")
    blocked = client.post(url(), valid_data(), HTTP_X_FORWARDED_FOR="198.51.100.7")
    allowed = client.post(url(), valid_data(), HTTP_X_FORWARDED_FOR="198.51.100.8")
    assert (blocked.status_code, allowed.status_code) == (429, 302)


def test_registration_request_page__other_methods__not_allowed(client) -> None:
    assert client.put(url()).status_code == 405


def test_registration_request_page__empty_post__shows_errors_and_saves_nothing(client) -> None:
    response = client.post(url(), {})
    assert response.status_code == 200
    assert response.context["form"].is_bound
    assert 'id="id_business_id_error"' in response.content.decode()
    assert not RegistrationRequest.objects.exists()
