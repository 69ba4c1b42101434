"""The capacity and demand view in a real browser, on the demo data: each chart says what the table beside it says,
axe finds nothing, and the page runs without console errors or CSP violations (its charts are SVG drawn on the
server: no script, no inline style).

Signed in as a superuser; the admin in Finnish, as the browser asks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from kelabooking.management.commands.load_demo import Command as LoadDemo
from partners.models import User
from tests.e2e.conftest import AXE_TAGS, _format_violation, assert_no_console_errors
from tests.e2e.test_admin_pages import ADMIN_PASSWORD, ADMIN_USERNAME, assert_accessible, log_in

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

URL = "/admin/bookings/slot/capacity-and-demand/"

# Every drawn figure of a chart against its table's cell (same row key, same column): the mismatches, as text.
_COMPARE = """(slug) => {
  const problems = [];
  const svg = document.querySelector(`svg[data-chart="${slug}"]`);
  const table = document.querySelector(`table[data-chart="${slug}"]`);
  const cell = (row, column) => table.querySelector(`tr[data-row="${row}"] td[data-column="${column}"]`);
  let compared = 0;
  if (slug === "capacity") {
    for (const figure of svg.querySelectorAll("g[data-row] g[data-column]")) {
      const row = figure.closest("g[data-row]").dataset.row;
      const td = cell(row, figure.dataset.column);
      const status = figure.dataset.status;
      const drawn = figure.querySelector("text").textContent.trim();
      const shown = td.textContent.trim();
      const ok = status === "closed"
        ? td.classList.contains("closed") && drawn === "–"
        : shown.startsWith(`${figure.dataset.share} %`) && drawn === figure.dataset.share
          && (status === "open" ? td.className === "" : td.classList.contains(status))
          && figure.querySelector("rect").classList.contains(status === "open" ? "cell" : status);
      if (!ok) problems.push(`${slug} ${row}/${figure.dataset.column}: drawn ${drawn} (${status}), table ${shown}`);
      compared++;
    }
  } else if (slug === "demand") {
    for (const figure of svg.querySelectorAll("g[data-row][data-column]")) {
      const td = cell(figure.dataset.row, figure.dataset.column);
      const height = Number(figure.querySelector("rect").getAttribute("height"));
      const value = Number(td.textContent.trim().replace(/\\s/g, ""));
      if (figure.dataset.value !== td.textContent.trim() || (height > 0) !== (value > 0)) {
        problems.push(`${slug} ${figure.dataset.row}/${figure.dataset.column}: drawn ${figure.dataset.value} `
          + `(height ${height}), table ${td.textContent.trim()}`);
      }
      compared++;
    }
  } else {
    for (const figure of svg.querySelectorAll("g[data-row]")) {
      const td = cell(figure.dataset.row, 0);
      const label = figure.querySelector("text.value").textContent.trim();
      const bar = figure.querySelector("rect.bar");
      const hidden = td.textContent.trim() === "< 5";
      if (label !== td.textContent.trim() || figure.dataset.value !== label || hidden === Boolean(bar)) {
        problems.push(`${slug} ${figure.dataset.row}: drawn ${label} (bar: ${Boolean(bar)}), table ${td.textContent}`);
      }
      compared++;
    }
  }
  const rows = table.querySelectorAll("tbody tr[data-row]").length;
  return {problems, compared, rows};
}"""


@pytest.fixture
def demo() -> None:
    LoadDemo().handle()
    User.objects.create_superuser(ADMIN_USERNAME, password=ADMIN_PASSWORD)


def test_capacity_demand__each_chart__says_what_its_table_says(page: Page, demo) -> None:
    log_in(page)
    page.locator(f'#content-main a[href="{URL}"]').first.click()  # the admin index links it
    page.wait_for_url(f"**{URL}")
    charts = page.locator("svg[data-chart]").evaluate_all("(svgs) => svgs.map((svg) => svg.dataset.chart)")
    assert charts == ["capacity", "demand", "languages", "interpreters", "organisation-kinds", "channels"]
    for slug in charts:
        result = page.evaluate(_COMPARE, slug)
        assert result["rows"] > 0, slug
        assert result["compared"] >= result["rows"], slug
        assert not result["problems"], "\n".join(result["problems"][:20])
    # The demo's rare interpreter languages are hidden as "< 5", drawn without a bar.
    assert page.locator('svg[data-chart="interpreters"] g[data-value="< 5"]').count() > 0
    assert page.locator('svg[data-chart="capacity"] g[data-status="full"]').count() > 0
    # Every chart is an image with a name and a description, and its table has a caption.
    for svg in page.locator("svg[data-chart]").all():
        assert svg.get_attribute("role") == "img"
        assert page.locator(f"#{svg.get_attribute('aria-labelledby')}").text_content()
        assert page.locator(f"#{svg.get_attribute('aria-describedby')}").text_content()
    assert_accessible(page)


def test_capacity_demand__bad_filter__shows_the_error_accessibly(page: Page, demo) -> None:
    log_in(page)
    page.goto(f"{URL}?start=2027-02-01&end=2027-01-01")
    assert page.locator(".errornote").is_visible()
    assert page.locator("svg[data-chart]").count() == 0
    assert_no_violations(page)
    assert_no_console_errors(page, refused_with=400)


def assert_no_violations(page: Page) -> None:
    """axe as test_admin_pages.assert_accessible runs it, for a page answered with an error status on purpose."""
    from axe_playwright_python.sync_playwright import Axe

    options = {
        "runOnly": {"type": "tag", "values": AXE_TAGS},
        "resultTypes": ["violations"],
        "preload": {"assets": ["media"]},
    }
    violations = Axe().run(page, options=options).response["violations"]
    report = "\n".join(_format_violation(violation) for violation in violations)
    assert not violations, f"axe found {len(violations)} violation(s) on {page.url}:\n{report}"
