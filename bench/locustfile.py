"""The simulated users of bench/http_journey.py (docs/benchmarks.md §3), one class a phase:

- `PartnerUser` signs in once through the Suomi.fi sandbox (a typed test identity code of its own, the organisation
  chosen in the Valtuudet stand-in, the terms, its own customer) and then, thinking between pages, books a time and
  cancels it, or reads the customer overview, or browses the time picker;
- `FloorUser` posts to the floor view (bench/urls.py: one small insert) back to back, with a signed-in partner's
  session;
- `ConfirmUser` posts booking confirms back to back, each with another prepared session (hold and contact details
  ready, as the earlier steps leave them).

Every request's time is kept by `record` and written as JSON to BENCH_RESULTS at exit.
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

import gevent
from locust import FastHttpUser, constant, events, task
from locust.exception import StopUser

from bench._common import cookie_headers
from tests.drills import confirm_form, csrf_token

THINK = (float(os.environ.get("BENCH_THINK_MIN", "0.5")), float(os.environ.get("BENCH_THINK_MAX", "1.5")))
PEOPLE = json.loads(Path(os.environ["BENCH_PEOPLE"]).read_text()) if os.environ.get("BENCH_PEOPLE") else {}
PREPARED = json.loads(Path(os.environ["BENCH_SESSIONS"]).read_text()) if os.environ.get("BENCH_SESSIONS") else []
BOOKING_PATH = re.compile(r"/booking/([A-Z0-9-]+)/$")
TAKEN_MEANWHILE = "This time was just taken."  # SlotFullError's message on the time page, in English
SIGN_IN, SIGN_IN_ATTEMPTS = "sign-in (whole flow)", 3

# name -> {"ms": [...], "errors": n, "first": t, "last": t, "samples": [first error texts]}
_results: dict[str, dict] = defaultdict(lambda: {"ms": [], "errors": 0, "first": None, "last": None, "samples": []})
# The steady state is measured from when every user has started and, in the journey, every partner has signed in
# (or given up): before that the sign-ins, which call the sandbox on the same server, crowd the workers.
_steady = {"since": None, "signed_in": 0, "expected": len(PEOPLE.get("partners", []))}


@events.spawning_complete.add_listener
def steady_from_now(**_kwargs) -> None:
    if not _steady["expected"]:
        _steady["since"] = time.time()


@events.request.add_listener
def record(name: str, response_time: float, exception: BaseException | None = None, **_kwargs) -> None:
    if _steady["since"] is None and not name.startswith("sign-in"):
        return  # warm-up: the first pages while the other partners are still signing in
    entry, ended = _results[name], time.time()
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


def _quit(environment) -> None:
    """End the run once the prepared sessions are used up. From a greenlet of its own: called from the user's own
    greenlet, the runner's quit left the process running until --run-time."""
    gevent.spawn(environment.runner.quit)


def _expect(response, status: int, *, location: str = "") -> None:
    """Fail the request (and so the step) unless it answered `status`, and, for a redirect, to `location`."""
    if response.status_code != status:
        response.failure(f"HTTP {response.status_code}, expected {status}")
        raise PageError(response.status_code)
    if location not in (response.headers.get("Location") or ""):
        response.failure(f"redirected to {response.headers.get('Location')!r}, expected {location!r}")
        raise PageError(location)
    response.success()


def _csrf(html: str) -> str:
    if not (token := csrf_token(html)):
        raise PageError("no CSRF token on the page")
    return token


def _choices(html: str, name: str) -> list[str]:
    return re.findall(rf'name="{name}" value="([^"]+)"', html)


class PartnerUser(FastHttpUser):
    """A caseworker: signs in once, then books and cancels, reads the overview or browses times, thinking between."""

    wait_time = constant(0)  # the think time is between pages, inside the tasks
    max_redirects = 0

    def think(self) -> None:
        time.sleep(random.uniform(*THINK))

    def page(self, path: str, name: str, *, status: int = 200, location: str = "", headers: dict | None = None):
        """GET a page that must answer `status` (a redirect: to `location`); its HTML, or where it redirects to."""
        with self.client.get(path, name=name, catch_response=True, allow_redirects=False, headers=headers) as r:
            _expect(r, status, location=location)
            return (r.headers.get("Location") if status == 302 else r.text) or ""

    def post(self, path: str, name: str, data: dict, *, html: str, location: str) -> str:
        """POST the form of the page `html` that must redirect to `location` (post/redirect/get); where to."""
        data |= {"csrfmiddlewaretoken": _csrf(html)}
        with self.client.post(path, name=name, data=data, catch_response=True, allow_redirects=False) as response:
            _expect(response, 302, location=location)
            return response.headers.get("Location") or ""

    def fire(self, started: float, error: Exception | None = None) -> None:
        elapsed = 0 if error else (time.perf_counter() - started) * 1000
        events.request.fire(
            request_type="FLOW", name=SIGN_IN, response_time=elapsed, response_length=0, exception=error
        )

    def on_start(self) -> None:
        """Sign in; a failed sign-in starts over with no cookies, as a person would, SIGN_IN_ATTEMPTS times."""
        self.identity_code, self.customer_code = PEOPLE["partners"].pop(), PEOPLE["customers"].pop()
        try:
            for attempt in range(SIGN_IN_ATTEMPTS):
                started = time.perf_counter()
                try:
                    self.sign_in()
                except PageError as error:
                    self.fire(started, error)
                    self.client.cookiejar.clear()
                    if attempt == SIGN_IN_ATTEMPTS - 1:
                        raise StopUser from error
                    continue
                self.fire(started)
                return
        finally:
            _steady["signed_in"] += 1
            if _steady["signed_in"] >= _steady["expected"] and _steady["since"] is None:
                _steady["since"] = time.time()

    def sign_in(self) -> None:
        """Suomi.fi sandbox identification, the Valtuudet organisation choice, the terms, the customer (the sandbox is
        served by the same server, as in `make run`: its redirect URIs must be on its own host)."""
        authorize = self.page("/en/login/", "sign-in: start", status=302, location="/sandbox/oidc/")
        identify = self.page(authorize, "sign-in: sandbox identification page")
        data = {"identity_code": self.identity_code, "action": "identify"}
        callback = self.post(authorize, "sign-in: sandbox identify", data, html=identify, location="/oidc/callback/")
        self.page(callback, "sign-in: callback", status=302)
        work = self.page("/en/work/", "sign-in: work page")
        choose = self.post(
            "/en/work/organisation/", "sign-in: choose organisation", {}, html=work, location="/sandbox/valtuudet/"
        )
        chooser = self.page(choose, "sign-in: sandbox organisation page")
        data = {"organisation": _choices(chooser, "organisation")[0], "action": "choose"}
        back = self.post(choose, "sign-in: sandbox choose", data, html=chooser, location="/valtuudet/callback/")
        self.page(back, "sign-in: valtuudet callback", status=302, location="/terms/")
        terms = self.page("/en/terms/", "sign-in: terms page")
        self.post("/en/terms/", "sign-in: accept terms", {"consent": "on"}, html=terms, location="/")
        customer = self.page("/en/customer/", "sign-in: customer page")
        data = {"identity_code": self.customer_code}
        self.post(
            "/en/customer/", "sign-in: customer identity code", data, html=customer, location="/customer/overview/"
        )
        self.page("/en/customer/overview/", "sign-in: overview")

    def choose_matter(self, *, first: bool = False, interpreter: bool = False) -> None:
        """The matter page and its post: a random service line (`first`: the first), Finnish."""
        matter = self.page("/en/book/", "book: matter page")
        self.think()
        lines = _choices(matter, "service_line")
        data = {
            "service_line": lines[0] if first else random.choice(lines),
            "language": "fi",
            "interpreter_needed": "yes" if interpreter else "no",
            "interpreter_language": "ar" if interpreter else "",
        }
        self.post("/en/book/", "book: matter post", data, html=matter, location="/book/time/")

    @task(2)
    def book_and_cancel(self) -> None:
        """Matter → pick a time → contact → check → confirm → done → cancel → overview."""
        with contextlib.suppress(PageError):  # a failed request is already counted under its step
            self.choose_matter(interpreter=random.random() < 0.25)
            times = self.page("/en/book/time/", "book: time picker")
            self.think()
            if not (free := _choices(times, "slot")):
                raise PageError("no free time this week")
            if not self.hold(random.choice(free), html=times):
                return
            contact = self.page("/en/book/contact/", "book: contact page")
            self.think()
            # Half the customers also get the confirmation by e-mail, with the calendar entry.
            data = {
                "phone": "040 123 4567",
                "email": random.choice(["", "asiakas@example.org"]),
                "description": "Benchmark",
            }
            self.post("/en/book/contact/", "book: contact post", data, html=contact, location="/book/check/")
            check = self.page("/en/book/check/", "book: check page")
            self.think()
            if not (form := confirm_form(check)):
                raise PageError("no confirm form on the check page")
            done = self.post("/en/book/check/", "book: CONFIRM", form, html=check, location="/booking/")
            self.page(done, "book: done page")
            self.think()
            cancel_path = f"/en/booking/{BOOKING_PATH.search(done).group(1)}/cancel/"
            cancel = self.page(cancel_path, "cancel: page")
            self.think()
            data = {"reason": "Benchmark"}
            self.post(cancel_path, "cancel: post", data, html=cancel, location="/customer/overview/")
            self.page("/en/customer/overview/", "overview")
            self.think()

    def hold(self, slot: str, *, html: str) -> bool:
        """Pick a time: held (a redirect to the contact page), or taken meanwhile by another partner, which the time
        page says: a right answer under contention, counted under a name of its own; the partner starts over."""
        data = {"slot": slot, "csrfmiddlewaretoken": _csrf(html)}
        name = "book: hold a time"
        with self.client.post("/en/book/time/", name=name, data=data, catch_response=True, allow_redirects=False) as r:
            if r.status_code == 200 and TAKEN_MEANWHILE in (r.text or ""):
                r.request_meta["name"] = "book: hold a time, taken meanwhile"
                r.success()
                return False
            _expect(r, 302, location="/book/contact/")
            return True

    @task(1)
    def read_overview(self) -> None:
        with contextlib.suppress(PageError):
            self.page("/en/customer/overview/", "overview")
        self.think()

    @task(1)
    def browse_times(self) -> None:
        """The time picker (after the matter, when the draft has none), then the next week through htmx."""
        with contextlib.suppress(PageError):
            times = self.client.get("/en/book/time/", name="book: time picker", allow_redirects=False)
            if times.status_code == 302:
                self.choose_matter(first=True)
                times = self.client.get("/en/book/time/", name="book: time picker", allow_redirects=False)
            self.think()
            if following := re.search(r"\?week=(\d{4}-\d\d-\d\d)", times.text or ""):
                htmx = {"HX-Request": "true"}
                self.page(
                    f"/en/book/time/?week={following.group(1)}", "book: time picker, another week (htmx)", headers=htmx
                )
        self.think()


class FloorUser(FastHttpUser):
    """The floor: back to back, one signed-in partner's session each."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.headers = cookie_headers(PREPARED.pop())

    @task
    def floor(self) -> None:
        with self.client.post("/bench/floor/", name="FLOOR", headers=self.headers, catch_response=True) as response:
            _expect(response, 200)


class ConfirmUser(FastHttpUser):
    """The confirm post, back to back, each with another prepared session; the run ends when they are used up."""

    wait_time = constant(0)
    max_redirects = 0

    @task
    def confirm(self) -> None:
        if not PREPARED:
            _quit(self.environment)
            raise StopUser
        session = PREPARED.pop()
        data = {"hold": session["hold"], "idempotency_key": session["idempotency_key"]}
        with (
            self.client.post(
                "/en/book/check/",
                name="CONFIRM",
                data=data,
                headers=cookie_headers(session),
                allow_redirects=False,
                catch_response=True,
            ) as response,
            contextlib.suppress(PageError),
        ):
            _expect(response, 302, location="/booking/")


class BookingUser(FastHttpUser):
    """A whole booking as the browser makes it at its shortest, back to back, each with another prepared session (the
    matter chosen and the contact details typed): hold a time, the check page, confirm."""

    wait_time = constant(0)
    max_redirects = 0

    @task
    def book(self) -> None:
        if not PREPARED:
            _quit(self.environment)
            raise StopUser
        session = PREPARED.pop()
        headers = cookie_headers(session)
        started = time.perf_counter()
        try:
            self.step("BOOKING: hold", "/en/book/time/", 302, "/book/contact/", headers, {"slot": session["slot"]})
            check = self.step("BOOKING: check page", "/en/book/check/", 200, "", headers)
            if not (form := confirm_form(check)):
                raise PageError("no confirm form on the check page")
            self.step("BOOKING: confirm", "/en/book/check/", 302, "/booking/", headers, form)
        except PageError as error:
            events.request.fire(
                request_type="FLOW", name="BOOKING", response_time=0, response_length=0, exception=error
            )
            return
        elapsed = (time.perf_counter() - started) * 1000
        events.request.fire(request_type="FLOW", name="BOOKING", response_time=elapsed, response_length=0)

    def step(self, name: str, path: str, status: int, location: str, headers: dict, data: dict | None = None) -> str:
        method = self.client.get if data is None else self.client.post
        options = {"data": data} if data is not None else {}
        with method(path, name=name, headers=headers, allow_redirects=False, catch_response=True, **options) as r:
            _expect(r, status, location=location)
            return r.text or ""
