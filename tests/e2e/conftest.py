"""Browser fixtures: one headless Chromium per session, a fresh context and page per test, against the live server.

Every page records console errors, uncaught exceptions and Content-Security-Policy violations, so a test can assert
that the page ran cleanly; `assert_accessible` adds an axe-core scan on top.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.conftest import CHROMIUM

try:
    from playwright.sync_api import expect
except ImportError:  # the browser marker then skips every test here with a reason (tests/conftest.py)
    expect = None

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page
    from pytest_django.live_server_helper import LiveServer

# Playwright's sync API runs an asyncio loop in this thread; without this Django's ORM refuses to run in the test.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
DESKTOP_VIEWPORT = {"width": 1280, "height": 900}

# Chromium reports a CSP violation as a console error; this listener (injected through the DevTools protocol, so
# the policy does not block it) also catches any that the console would word differently.
_CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline"}`
    + ` at ${event.sourceFile || event.documentURI}:${event.lineNumber}`);
});
"""

# What went wrong on each page, kept beside the page rather than on it.
_problems: weakref.WeakKeyDictionary[Page, list[str]] = weakref.WeakKeyDictionary()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    """A page in its own context (no cookies shared between tests) whose relative URLs go to the live server."""
    context = browser.new_context(base_url=live_server.url, viewport=DESKTOP_VIEWPORT, locale="fi-FI")
    context.set_default_timeout(10_000)
    page = context.new_page()
    problems: list[str] = []
    _problems[page] = problems

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            source = message.location.get("url")
            problems.append(f"console error on {page.url}: {message.text}" + (f" ({source})" if source else ""))

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"uncaught exception on {page.url}: {error}"))
    page.add_init_script(_CSP_LISTENER)
    yield page
    context.close()


def assert_no_console_errors(page: Page, *, refused_with: int | None = None) -> None:
    """No console errors, uncaught exceptions or CSP violations since the page fixture opened the page.

    `refused_with`: the page itself is answered with this status on purpose (a refusal page); Chromium reports
    that as a console error about the document, which is then the one error allowed.
    """
    problems = _problems[page]
    if refused_with is not None:
        expected = f"the server responded with a status of {refused_with}"
        problems = [problem for problem in problems if not (expected in problem and page.url in problem)]
    assert not problems, "the browser reported problems:\n" + "\n".join(problems)


def _format_violation(violation: dict) -> str:
    lines = [f"- {violation['id']} ({violation['impact']}): {violation['help']}", f"  {violation['helpUrl']}"]
    for node in violation["nodes"]:
        target = " ".join(str(part) for part in node["target"])
        lines.append(f"    at {target}")
        if node.get("failureSummary"):
            lines.extend(f"      {line}" for line in node["failureSummary"].splitlines())
    return "\n".join(lines)


def assert_no_axe_violations(page: Page) -> None:
    """axe-core finds nothing against WCAG 2.0/2.1 A and AA or its best practices on the page as it is now."""
    from axe_playwright_python.sync_playwright import Axe

    options = {"runOnly": {"type": "tag", "values": AXE_TAGS}, "resultTypes": ["violations"]}
    violations = Axe().run(page, options=options).response["violations"]
    report = "\n".join(_format_violation(violation) for violation in violations)
    assert not violations, f"axe found {len(violations)} violation(s) on {page.url}:\n{report}"


def assert_accessible(page: Page, *, refused_with: int | None = None) -> None:
    """The page passes axe and ran without console errors or CSP violations."""
    assert_no_axe_violations(page)
    assert_no_console_errors(page, refused_with=refused_with)


@pytest.fixture
def sandbox(live_server: LiveServer, settings) -> None:
    """Point the relying party and the sandbox at the live server, as `make run` does at 127.0.0.1:8000."""
    base = live_server.url
    settings.SUOMIFI_SANDBOX_BASE_URL = base
    settings.OIDC_OP_ISSUER = f"{base}/sandbox/oidc"
    settings.OIDC_OP_DISCOVERY_URL = f"{base}/sandbox/oidc/.well-known/openid-configuration"
    settings.VALTUUDET_BASE_URL = f"{base}/sandbox/valtuudet"
    settings.STAFF_OIDC_OP_ISSUER = f"{base}/sandbox/staff-oidc"
    settings.STAFF_OIDC_OP_DISCOVERY_URL = f"{base}/sandbox/staff-oidc/.well-known/openid-configuration"
