"""The simulated users of the HTTP benchmark. bench/http_journey.py starts Locust with one class per phase:

- `PartnerUser` signs in once through the Suomi.fi sandbox (a typed test identity code of its own, the organisation
  chosen in the Valtuudet stand-in, the terms accepted, its own customer entered) and then, with a think time between
  pages, books a time and cancels it, or reads the customer overview, or browses the time picker.
- `FloorUser` requests the floor view (bench/urls.py) back to back, with a signed-in partner's session.
- `ConfirmUser` posts the confirm of a booking back to back, each time with another prepared session whose hold and
  contact details are ready, as the earlier steps leave them, with the hold and a new idempotency key in the form.

Every request goes through Locust's request event; `record` keeps each one's time, and at exit they are written as
JSON to BENCH_RESULTS for the orchestrator. Settings come from the environment (see http_journey.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import time
from collections import defaultdict
from pathlib import Path

from locust import FastHttpUser, constant, events, task
from locust.exception import StopUser

from bench._common import cookie_headers

THINK = (float(os.environ.get("BENCH_THINK_MIN", "0.5")), float(os.environ.get("BENCH_THINK_MAX", "1.5")))
PEOPLE = json.loads(Path(os.environ["BENCH_PEOPLE"]).read_text()) if os.environ.get("BENCH_PEOPLE") else {}
LANGUAGE = "en"

CSRF_IN_FORM = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
CSRF_IN_HEADERS = re.compile(r'"X-CSRFToken":\s*"([^"]+)"')
RADIO = r'name="{name}" value="([^"]+)"'
HIDDEN = r'type="hidden" name="{name}" value="([^"]+)"'
BOOKING_PATH = re.compile(r"/booking/([A-Z0-9-]+)/$")
TAKEN_MEANWHILE = "This time was just taken."  # SlotFullError's message on the time page, in English

# name -> {"ms": [...], "errors": n, "first": t, "last": t, "samples": [first error texts]}
_results: dict[str, dict] = defaultdict(lambda: {"ms": [], "errors": 0, "first": None, "last": None, "samples": []})


# The steady state is measured from when every user has started and, in the journey, every partner has signed in
# (or given up after SIGN_IN_ATTEMPTS): before that the sign-ins, which call the sandbox on the same server, crowd
# the workers.
_steady = {"since": None}
SIGN_INS_EXPECTED = len(PEOPLE.get("partners", []))
SIGN_IN_ATTEMPTS = 3
_signed = {"done": 0}


@events.spawning_complete.add_listener
def steady_from_now(**_kwargs) -> None:
    if not SIGN_INS_EXPECTED:
        _steady["since"] = time.time()


def _signed_in_one() -> None:
    _signed["done"] += 1
    if _signed["done"] >= SIGN_INS_EXPECTED and _steady["since"] is None:
        _steady["since"] = time.time()


@events.request.add_listener
def record(name: str, response_time: float, exception: BaseException | None = None, **_kwargs) -> None:
    if _steady["since"] is None and not name.startswith("sign-in"):
        return  # warm-up: the first pages while the other partners are still signing in
    entry = _results[name]
    ended = time.time()
    entry["first"] = min(entry["first"] or ended, ended - response_time / 1000)
    entry["last"] = max(entry["last"] or ended, ended)
    if exception is None:
        entry["ms"].append(response_time)
    else:
        entry["errors"] += 1
        if len(entry["samples"]) < 3:
            entry["samples"].append(str(exception)[:300])


@events.quitting.add_listener
def write_results(**_kwargs) -> None:
    if os.environ.get("BENCH_RESULTS"):
        Path(os.environ["BENCH_RESULTS"]).write_text(json.dumps(_results))


class PageError(Exception):
    pass


def _expect(response, status: int, *, location: str = "") -> None:
    """Fail the request (and so the step) unless it answered `status`, and, for a redirect, to `location`."""
    if response.status_code != status:
        response.failure(f"HTTP {response.status_code}, expected {status}")
        raise PageError(response.status_code)
    if location and location not in (response.headers.get("Location") or ""):
        response.failure(f"redirected to {response.headers.get('Location')!r}, expected {location!r}")
        raise PageError(location)
    response.success()


def _csrf(html: str) -> str:
    found = CSRF_IN_FORM.search(html) or CSRF_IN_HEADERS.search(html)
    if not found:
        raise PageError("no CSRF token on the page")
    return found.group(1)


def _choices(html: str, name: str) -> list[str]:
    return re.findall(RADIO.format(name=name), html)


def _confirm_form(html: str) -> dict[str, str]:
    """What the check page's confirm form posts: the hold it shows and its idempotency key."""
    found = {name: re.search(HIDDEN.format(name=name), html) for name in ("hold", "idempotency_key")}
    if not all(found.values()):
        raise PageError("no confirm form on the check page")
    return {name: match.group(1) for name, match in found.items()}


class PartnerUser(FastHttpUser):
    """A caseworker: signs in once, then books and cancels, reads the overview or browses times, thinking between."""

    wait_time = constant(0)  # the think time is between pages, inside the tasks
    max_redirects = 0

    def think(self) -> None:
        time.sleep(random.uniform(*THINK))

    def page(self, path: str, name: str, *, headers: dict | None = None) -> str:
        """GET a page that must answer 200; its HTML."""
        with self.client.get(path, name=name, catch_response=True, allow_redirects=False, headers=headers) as r:
            _expect(r, 200)
            return r.text or ""

    def redirect(self, path: str, name: str, *, location: str = "") -> str:
        """GET a page that must redirect (to `location`, when given); where it redirects to."""
        with self.client.get(path, name=name, catch_response=True, allow_redirects=False) as response:
            _expect(response, 302, location=location)
            return response.headers.get("Location") or ""

    def post(self, path: str, name: str, data: dict, *, csrf: str, location: str) -> str:
        """POST a form that must redirect to `location` (post/redirect/get); where it redirects to."""
        with self.client.post(
            path, name=name, data=data | {"csrfmiddlewaretoken": csrf}, catch_response=True, allow_redirects=False
        ) as response:
            _expect(response, 302, location=location)
            return response.headers.get("Location") or ""

    def hold(self, slot: str, *, csrf: str) -> bool:
        """Pick a time: held (a redirect to the contact page), or taken meanwhile by another partner, which the time
        page says with the nearest free times. That is a right answer under contention, not an error; it is counted
        under a name of its own, and the partner starts over."""
        with self.client.post(
            f"/{LANGUAGE}/book/time/",
            name="book: hold a time",
            data={"slot": slot, "csrfmiddlewaretoken": csrf},
            catch_response=True,
            allow_redirects=False,
        ) as response:
            if response.status_code == 200 and TAKEN_MEANWHILE in (response.text or ""):
                response.request_meta["name"] = "book: hold a time, taken meanwhile"
                response.success()
                return False
            _expect(response, 302, location="/book/contact/")
            return True

    def on_start(self) -> None:
        """Sign in; a failed sign-in starts over with no cookies, as a person would, SIGN_IN_ATTEMPTS times."""
        self.identity_code, self.customer_code = PEOPLE["partners"].pop(), PEOPLE["customers"].pop()
        try:
            for attempt in range(SIGN_IN_ATTEMPTS):
                started = time.perf_counter()
                try:
                    self.sign_in()
                except PageError as error:
                    events.request.fire(
                        request_type="FLOW",
                        name="sign-in (whole flow)",
                        response_time=0,
                        response_length=0,
                        exception=error,
                    )
                    self.client.cookiejar.clear()
                    if attempt == SIGN_IN_ATTEMPTS - 1:
                        raise StopUser from error
                    continue
                events.request.fire(
                    request_type="FLOW",
                    name="sign-in (whole flow)",
                    response_time=(time.perf_counter() - started) * 1000,
                    response_length=0,
                    exception=None,
                )
                return
        finally:
            _signed_in_one()

    def sign_in(self) -> None:
        """Suomi.fi sandbox identification, the Valtuudet organisation choice, the terms, the customer.

        The sandbox is served by the same server, as in `make run`: its redirect URIs must be on its own host.
        """
        authorize = self.redirect(f"/{LANGUAGE}/login/", "sign-in: start", location="/sandbox/oidc/")
        identify_page = self.page(authorize, "sign-in: sandbox identification page")
        callback = self.post(
            authorize,
            "sign-in: sandbox identify",
            {"identity_code": self.identity_code, "action": "identify"},
            csrf=_csrf(identify_page),
            location="/oidc/callback/",
        )
        self.redirect(callback, "sign-in: callback")
        work = self.page(f"/{LANGUAGE}/work/", "sign-in: work page")
        choose_url = self.post(
            f"/{LANGUAGE}/work/organisation/",
            "sign-in: choose organisation",
            {},
            csrf=_csrf(work),
            location="/sandbox/valtuudet/",
        )
        organisation_page = self.page(choose_url, "sign-in: sandbox organisation page")
        valtuudet_callback = self.post(
            choose_url,
            "sign-in: sandbox choose",
            {"organisation": _choices(organisation_page, "organisation")[0], "action": "choose"},
            csrf=_csrf(organisation_page),
            location="/valtuudet/callback/",
        )
        self.redirect(valtuudet_callback, "sign-in: valtuudet callback", location="/terms/")
        terms = self.page(f"/{LANGUAGE}/terms/", "sign-in: terms page")
        self.post(f"/{LANGUAGE}/terms/", "sign-in: accept terms", {"consent": "on"}, csrf=_csrf(terms), location="/")
        customer = self.page(f"/{LANGUAGE}/customer/", "sign-in: customer page")
        self.post(
            f"/{LANGUAGE}/customer/",
            "sign-in: customer identity code",
            {"identity_code": self.customer_code},
            csrf=_csrf(customer),
            location="/customer/overview/",
        )
        self.page(f"/{LANGUAGE}/customer/overview/", "sign-in: overview")

    @task(2)
    def book_and_cancel(self) -> None:
        """Customer → matter → pick a time → contact → check → confirm → done → cancel → overview."""
        with contextlib.suppress(PageError):  # a failed request is already counted under its step
            self._book_and_cancel()

    def _book_and_cancel(self) -> None:
        matter = self.page(f"/{LANGUAGE}/book/", "book: matter page")
        self.think()
        interpreter = random.random() < 0.25
        self.post(
            f"/{LANGUAGE}/book/",
            "book: matter post",
            {
                "service_line": random.choice(_choices(matter, "service_line")),
                "language": "fi",
                "interpreter_needed": "yes" if interpreter else "no",
                "interpreter_language": "ar" if interpreter else "",
            },
            csrf=_csrf(matter),
            location="/book/time/",
        )
        times = self.page(f"/{LANGUAGE}/book/time/", "book: time picker")
        self.think()
        free = _choices(times, "slot")
        if not free:
            raise PageError("no free time this week")
        if not self.hold(random.choice(free), csrf=_csrf(times)):
            return
        contact = self.page(f"/{LANGUAGE}/book/contact/", "book: contact page")
        self.think()
        self.post(
            f"/{LANGUAGE}/book/contact/",
            "book: contact post",
            # Half the customers also get the confirmation by e-mail, with the calendar entry.
            {"phone": "040 123 4567", "email": random.choice(["", "asiakas@example.org"]), "description": "Benchmark"},
            csrf=_csrf(contact),
            location="/book/check/",
        )
        check = self.page(f"/{LANGUAGE}/book/check/", "book: check page")
        self.think()
        done = self.post(
            f"/{LANGUAGE}/book/check/", "book: CONFIRM", _confirm_form(check), csrf=_csrf(check), location="/booking/"
        )
        self.page(done, "book: done page")
        self.think()
        reference = BOOKING_PATH.search(done).group(1)
        cancel = self.page(f"/{LANGUAGE}/booking/{reference}/cancel/", "cancel: page")
        self.think()
        self.post(
            f"/{LANGUAGE}/booking/{reference}/cancel/",
            "cancel: post",
            {"reason": "Benchmark"},
            csrf=_csrf(cancel),
            location="/customer/overview/",
        )
        self.page(f"/{LANGUAGE}/customer/overview/", "overview")
        self.think()

    @task(1)
    def read_overview(self) -> None:
        with contextlib.suppress(PageError):
            self.page(f"/{LANGUAGE}/customer/overview/", "overview")
        self.think()

    @task(1)
    def browse_times(self) -> None:
        """The time picker (after the matter, when the draft has none), then the next week through htmx."""
        try:
            times = self.client.get(f"/{LANGUAGE}/book/time/", name="book: time picker", allow_redirects=False)
            if times.status_code == 302:
                matter = self.page(f"/{LANGUAGE}/book/", "book: matter page")
                self.think()
                self.post(
                    f"/{LANGUAGE}/book/",
                    "book: matter post",
                    {"service_line": _choices(matter, "service_line")[0], "language": "fi", "interpreter_needed": "no"},
                    csrf=_csrf(matter),
                    location="/book/time/",
                )
                times = self.client.get(f"/{LANGUAGE}/book/time/", name="book: time picker", allow_redirects=False)
            self.think()
            following = re.search(r"\?week=(\d{4}-\d\d-\d\d)", times.text or "")
            if following:
                self.page(
                    f"/{LANGUAGE}/book/time/?week={following.group(1)}",
                    "book: time picker, another week (htmx)",
                    headers={"HX-Request": "true"},
                )
        except PageError:
            pass
        self.think()


def _prepared_sessions() -> list[dict]:
    path = os.environ.get("BENCH_SESSIONS")
    return json.loads(Path(path).read_text()) if path else []


PREPARED = _prepared_sessions()


class FloorUser(FastHttpUser):
    """The floor: back to back, one signed-in partner's session each."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.headers = cookie_headers(PREPARED.pop())

    @task
    def floor(self) -> None:
        with self.client.get("/bench/floor/", name="FLOOR", headers=self.headers, catch_response=True) as response:
            _expect(response, 200)


class ConfirmUser(FastHttpUser):
    """The confirm post, back to back, each with another prepared session; the run ends when they are used up."""

    wait_time = constant(0)
    max_redirects = 0

    @task
    def confirm(self) -> None:
        if not PREPARED:
            self.environment.runner.quit()
            raise StopUser
        session = PREPARED.pop()
        with (
            self.client.post(
                f"/{LANGUAGE}/book/check/",
                name="CONFIRM",
                data={"hold": session["hold"], "idempotency_key": session["idempotency_key"]},
                headers=cookie_headers(session),
                allow_redirects=False,
                catch_response=True,
            ) as response,
            contextlib.suppress(PageError),
        ):
            _expect(response, 302, location="/booking/")
