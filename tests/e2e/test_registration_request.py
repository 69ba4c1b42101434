"""The public registration request form, filled in and sent in a real browser."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from registry.models import RegistrationRequest
from tests.e2e.conftest import assert_accessible, expect
from tests.factories import next_business_id

if TYPE_CHECKING:
    from playwright.sync_api import Page
    from pytest_django.live_server_helper import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _invalid_business_id() -> str:
    """A well-formed Y-tunnus whose check digit is wrong (each 7-digit body has at most one valid one)."""
    valid = next_business_id()
    return valid[:-1] + str((int(valid[-1]) + 1) % 10)


# Fields are found by name, not label, so the tests read the same in every language.
@pytest.mark.parametrize("language", ["fi", "sv", "en"])
def test_registration_request__submit_in_browser__saves_pending_request(
    page: Page, live_server: LiveServer, language: str
) -> None:
    business_id = next_business_id()
    page.goto(f"/{language}/registry/request/")

    page.locator("input[name=kind][value=add]").check()
    # Typed without the hyphen and with a space: the form stores the normalised form.
    page.locator("input[name=business_id]").fill(" " + business_id.replace("-", " "))
    page.locator("input[name=organisation_name]").fill("Tukiyhdistys Apu ry")
    page.locator("textarea[name=justification]").fill("Autamme asiakkaita, joilla on monimutkaisia Kela-asioita.")
    page.locator("input[name=contact_name]").fill("Maija Meikäläinen")
    page.locator("input[name=contact_email]").fill("maija@example.org")
    page.locator("form.form button[type=submit]").click()

    expect(page).to_have_url(f"{live_server.url}/{language}/registry/request/sent/")
    expect(page.locator("html")).to_have_attribute("lang", language)
    assert_accessible(page)
    request = RegistrationRequest.objects.get()
    assert request.status == RegistrationRequest.Status.PENDING
    assert request.kind == RegistrationRequest.Kind.ADD
    assert request.business_id == business_id
    assert request.organisation_name == "Tukiyhdistys Apu ry"
    assert request.contact_name == "Maija Meikäläinen"
    assert request.contact_email == "maija@example.org"
    assert request.contact_phone == ""
    assert request.language == language


@pytest.mark.parametrize("language", ["fi", "en"])
def test_registration_request__submit_bad_input__shows_linked_errors_and_saves_nothing(
    page: Page, live_server: LiveServer, language: str
) -> None:
    page.goto(f"/{language}/registry/request/")

    page.locator("input[name=kind][value=add]").check()
    page.locator("input[name=business_id]").fill(_invalid_business_id())
    page.locator("input[name=organisation_name]").fill("Tukiyhdistys Apu ry")
    page.locator("textarea[name=justification]").fill("Autamme asiakkaita.")
    # No contact person: no name, no e-mail address, no telephone number.
    page.locator("form.form button[type=submit]").click()

    expect(page).to_have_url(f"{live_server.url}/{language}/registry/request/")
    summary = page.locator("#error-summary")
    expect(summary).to_be_visible()
    expect(summary).to_have_attribute("role", "alert")
    expect(summary).to_have_attribute("tabindex", "-1")
    summary.focus()
    expect(summary).to_be_focused()
    # One entry per field error, each linking to its field, plus the missing contact details.
    expect(summary.locator("li")).to_have_count(3)
    expect(summary.locator("a[href='#id_business_id']")).to_have_count(1)
    expect(summary.locator("a[href='#id_contact_name']")).to_have_count(1)

    for name in ("business_id", "contact_name"):
        field = page.locator(f"#id_{name}")
        expect(field).to_have_attribute("aria-invalid", "true")
        described_by = (field.get_attribute("aria-describedby") or "").split()
        assert f"id_{name}_error" in described_by, f"#id_{name} is not described by its error: {described_by}"
        for description_id in described_by:
            expect(page.locator(f"#{description_id}")).to_have_count(1)
        expect(page.locator(f"#id_{name}_error")).to_be_visible()
        expect(page.locator(f"#id_{name}_error")).not_to_be_empty()
    for name in ("organisation_name", "justification"):
        expect(page.locator(f"#id_{name}")).not_to_have_attribute("aria-invalid", "true")

    # Following a link in the summary puts the keyboard focus in the field.
    summary.locator("a[href='#id_business_id']").click()
    expect(page.locator("#id_business_id")).to_be_focused()

    # What was typed is kept, so only the mistakes need fixing.
    expect(page.locator("input[name=organisation_name]")).to_have_value("Tukiyhdistys Apu ry")
    assert_accessible(page)
    assert not RegistrationRequest.objects.exists()
