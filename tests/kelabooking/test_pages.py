"""The start page, the footer pages and the base template every page builds on."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import translation

pytestmark = pytest.mark.django_db

PAGES = ["start", "accessibility", "privacy", "registry:request", "registry:request-sent", "partners:logged-out"]


def url(name: str, language: str) -> str:
    with translation.override(language):
        return reverse(name)


def test_root__redirects_to_a_language(client) -> None:
    response = client.get("/", HTTP_ACCEPT_LANGUAGE="sv")
    assert (response.status_code, response["Location"]) == (302, "/sv/")


@pytest.mark.parametrize("language", ["fi", "sv", "en"])
@pytest.mark.parametrize("name", PAGES)
def test_page__get__renders_in_language_with_base_layout(client, name: str, language: str) -> None:
    response = client.get(url(name, language))
    assert response.status_code == 200
    html = response.content.decode()
    assert f'<html lang="{language}">' in html
    assert re.search(r'<a class="skip-link" href="#main">', html)
    assert '<main id="main"' in html
    assert f'href="{url("accessibility", language)}"' in html
    assert f'href="{url("privacy", language)}"' in html
    # Language switcher: the same page in every language, the current one marked.
    for other in ["fi", "sv", "en"]:
        assert f'href="{url(name, other)}" lang="{other}" hreflang="{other}"' in html
    assert f'hreflang="{language}" aria-current="true"' in html


def test_base__htmx_is_vendored_and_configured_for_strict_csp(client) -> None:
    html = client.get(url("start", "en")).content.decode()
    assert '<script src="/static/vendor/htmx/htmx.min.js" defer></script>' in html
    config = re.search(r'<meta name="htmx-config" content=\'([^\']+)\'>', html).group(1)
    assert '"historyCacheSize": 0' in config
    assert '"allowEval": false' in config
    assert '"includeIndicatorStyles": false' in config
    assert re.search(r'hx-headers=\'\{"X-CSRFToken": "[A-Za-z0-9]+"\}\'', html)
    # Nothing inline that a strict CSP would block.
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "<style" not in html
    assert " style=" not in html
    assert " onclick=" not in html


def test_base__vendored_htmx_is_version_2(client) -> None:
    from django.contrib.staticfiles import finders

    source = open(finders.find("vendor/htmx/htmx.min.js"), encoding="utf-8").read()  # noqa: SIM115
    assert re.search(r'version:"2\.\d+\.\d+"', source)


def test_start_page__states_purpose_prerequisites_and_authority_line(client, settings) -> None:
    settings.KELA_AUTHORITY_LINE_PHONE, settings.KELA_AUTHORITY_LINE_CLOSES = "020 111 222", "14"
    html = client.get(url("start", "en")).content.decode()
    assert "Kela calls the customer" in html
    assert "interpreter" in html
    assert "Sosiaaliturvan etuusasioiden ajanvarauksen tekeminen" in html
    assert html.count('<ol class="prerequisites">') == 1
    prerequisites = re.search(r'<ol class="prerequisites">(.*?)</ol>', html, re.S).group(1)
    assert prerequisites.count("<li>") == 5
    assert "You cannot book a visit to a Kela service point here" in html
    assert 'href="tel:+35820111222">020 111 222</a>' in html
    assert "Monday to Friday 9–14" in html
    assert f'href="{url("partners:login", "en")}"' in html


def test_start_page__finnish_and_swedish_are_translated(client) -> None:
    finnish = client.get(url("start", "fi")).content.decode()
    swedish = client.get(url("start", "sv")).content.decode()
    assert "<h1>Varaa puhelinaika asiakkaallesi</h1>" in finnish
    assert "<h1>Boka telefontid för din kund</h1>" in swedish
    assert "Kelan viranomaislinja" in finnish
    assert "Before you book" not in finnish + swedish


def test_accessibility_statement__has_feedback_contact(client, settings) -> None:
    settings.ACCESSIBILITY_FEEDBACK_EMAIL = "palaute@kela.example"
    html = client.get(url("accessibility", "en")).content.decode()
    assert 'href="mailto:palaute@kela.example"' in html
    assert "WCAG" in html
    assert "two weeks" in html


def test_security_headers__on_every_page(client) -> None:
    response = client.get(url("start", "en"))
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def test_healthz__answers_ok(client) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.content) == (200, b"ok")
