"""The public pages in a real browser: languages, keyboard access, axe-core and reflow at 320 CSS pixels."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import assert_accessible, assert_no_console_errors, expect

if TYPE_CHECKING:
    from playwright.sync_api import Page
    from pytest_django.live_server_helper import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LANGUAGES = ["fi", "sv", "en"]
LANGUAGE_NAMES = {"fi": "Suomi", "sv": "Svenska", "en": "English"}
PATHS = {
    "start": "",
    "accessibility": "accessibility/",
    "privacy": "privacy/",
    "logged-out": "logged-out/",
    "registration-request": "registry/request/",
    "registration-request-errors": "registry/request/",
    "registration-request-sent": "registry/request/sent/",
}


def open_page(page: Page, *, language: str, name: str) -> None:
    page.goto(f"/{language}/{PATHS[name]}")
    if name == "registration-request-errors":
        # An empty form: every required field and the missing contact details come back as errors.
        page.locator("form.form button[type=submit]").click()
        expect(page.locator("#error-summary")).to_be_visible()


@pytest.mark.parametrize("language", LANGUAGES)
def test_start_page__open__declares_its_language(page: Page, language: str) -> None:
    page.goto(f"/{language}/")

    expect(page.locator("html")).to_have_attribute("lang", language)
    current = page.locator(".language-switcher a[aria-current]")
    expect(current).to_have_count(1)
    expect(current).to_have_attribute("aria-current", "true")
    expect(current).to_have_attribute("lang", language)
    expect(current).to_have_text(LANGUAGE_NAMES[language])
    expect(page.locator("h1")).to_have_count(1)
    expect(page.locator("h1")).not_to_be_empty()
    assert_no_console_errors(page)


def test_start_page__open_each_language__heading_is_translated(page: Page) -> None:
    """Holds only once the fi and sv catalogues under locale/ are compiled: until then every page is in English."""
    headings = {}
    for language in LANGUAGES:
        page.goto(f"/{language}/")
        headings[language] = page.locator("h1").inner_text().strip()

    assert headings["en"] == "Book a telephone time for your customer"
    assert headings["fi"] != headings["en"], f"/fi/ shows the English heading {headings['fi']!r}: no fi translation"
    assert headings["sv"] != headings["en"], f"/sv/ shows the English heading {headings['sv']!r}: no sv translation"
    assert headings["sv"] != headings["fi"]


@pytest.mark.parametrize(
    ("start", "choice", "target"),
    [
        ("/en/privacy/", "Svenska", "/sv/privacy/"),
        ("/sv/accessibility/", "Suomi", "/fi/accessibility/"),
        ("/fi/registry/request/", "English", "/en/registry/request/"),
    ],
)
def test_language_switcher__choose_language__keeps_the_current_page(
    page: Page, live_server: LiveServer, start: str, choice: str, target: str
) -> None:
    page.goto(start)

    page.locator(".language-switcher").get_by_role("link", name=choice).click()

    expect(page).to_have_url(f"{live_server.url}{target}")
    language = target.split("/")[1]
    expect(page.locator("html")).to_have_attribute("lang", language)
    expect(page.locator(".language-switcher a[aria-current='true']")).to_have_text(choice)
    assert_no_console_errors(page)


@pytest.mark.parametrize("language", LANGUAGES)
def test_skip_link__tab_then_enter__moves_focus_to_main(page: Page, language: str) -> None:
    page.goto(f"/{language}/")

    page.keyboard.press("Tab")
    skip_link = page.locator("a.skip-link")
    expect(skip_link).to_be_focused()
    expect(skip_link).to_be_in_viewport()
    expect(skip_link).to_have_attribute("href", "#main")

    page.keyboard.press("Enter")
    expect(page.locator("main#main")).to_be_focused()
    expect(page).to_have_url(re.compile(r"#main$"))
    assert_no_console_errors(page)


@pytest.mark.parametrize("name", PATHS)
@pytest.mark.parametrize("language", LANGUAGES)
def test_public_page__axe_scan__finds_no_violations(page: Page, language: str, name: str) -> None:
    open_page(page, language=language, name=name)

    expect(page.locator("html")).to_have_attribute("lang", language)
    assert_accessible(page)


@pytest.mark.parametrize("name", PATHS)
@pytest.mark.parametrize("language", LANGUAGES)
def test_public_page__at_320_css_pixels__needs_no_horizontal_scrolling(page: Page, language: str, name: str) -> None:
    # WCAG 1.4.10 reflow: 1280 px at 400 % zoom leaves a 320 × 256 CSS pixel viewport.
    page.set_viewport_size({"width": 320, "height": 256})
    open_page(page, language=language, name=name)

    overflow = page.evaluate(
        """() => {
          const width = window.innerWidth;
          const wide = [...document.querySelectorAll("body *")]
            .filter((element) => element.getBoundingClientRect().right > width + 0.5)
            .map((element) => element.tagName.toLowerCase() + (element.id ? "#" + element.id : "")
              + (element.className && typeof element.className === "string" ? "." + element.className : ""));
          return {scrollWidth: document.documentElement.scrollWidth, innerWidth: width, wide: wide.slice(0, 10)};
        }"""
    )
    assert overflow["scrollWidth"] <= overflow["innerWidth"], f"the page scrolls sideways at 320 px: {overflow}"
    assert_no_console_errors(page)
