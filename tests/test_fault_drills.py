"""Fault drills: real parts are stopped, killed or cut while the service works, and nothing is lost, duplicated or
half-written (DESIGN.md §4 rules 1–3 and 9, §3 Message).

- The broker stops while bookings continue: every message arrives exactly once, after the sweep.
- A worker is killed after the relay or gateway took a message and before the outbox row says sent: the repeat is
  recognisably the same message (the same Message-ID, the same Idempotency-Key).
- The web server's database connections are cut between requests, in the middle of a confirm and at random under
  load: no booking is half-written, and the next request succeeds.

Everything is local: a throw-away `redis-server` per drill (the machine's shared Redis is never stopped), Celery
workers and gunicorn as subprocesses on the PostgreSQL test database, a mail relay (aiosmtpd) and an SMS gateway
(werkzeug) on loopback. Every wait is bounded; every process is stopped in a fixture's teardown.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from email.utils import parseaddr

import pytest
import requests
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.db import connection, transaction
from django.urls import reverse
from django.utils import translation

from bookings.models import Booking, Customer, ServiceLine, Slot
from bookings.services import ContactDetails, booking_confirm, booking_hold
from kelabooking import clock
from kelabooking.delivery import message_id
from kelabooking.models import Message
from kelabooking.tasks import messages_sweep
from partners.models import AuditEvent, User
from tests.acting import signed_in_session
from tests.conftest import IN_CI
from tests.drills import (
    REDIS_SERVER,
    CeleryBroker,
    Processes,
    RedisServer,
    SmsGateway,
    SmtpRelay,
    Started,
    base_env,
    celery_worker_args,
    confirm_form,
    csrf_token,
    free_port,
    start_gunicorn,
    subprocess_database_url,
    wait_for,
)
from tests.factories import CustomerFactory, OrganisationFactory, PartnerFactory, SlotFactory, acting_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

PHONE = "+358401234567"
MAIL_DOMAIN = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rsplit("@", 1)[1]
# The web server's connections carry this name, so that a drill cuts theirs and no one else's.
WEB_APPLICATION_NAME = "kelabooking-drill-web"
REQUEST_TIMEOUT = 15


# --- Fixtures -------------------------------------------------------------------------------------------------------


@pytest.fixture
def processes(tmp_path) -> Iterator[Processes]:
    started = Processes(workdir=tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
def broker(processes) -> Iterator[RedisServer]:
    """A redis-server of this drill's own, and this process's Celery app queueing to it instead of running eagerly."""
    if not REDIS_SERVER:  # the rule of the marked tests (tests/conftest.py): skip locally, fail in CI
        reason = "the fault drills start their own redis-server: install it (apt-get install redis-server)"
        if IN_CI:
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    server = RedisServer(processes)
    server.start()
    celery = CeleryBroker(server.url)
    try:
        yield server
    finally:
        celery.restore()


@pytest.fixture
def relay() -> Iterator[SmtpRelay]:
    server = SmtpRelay()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def gateway() -> Iterator[SmsGateway]:
    server = SmsGateway()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def start_worker(processes, broker, relay, gateway, tmp_path):
    """Start a real `celery worker` process on the drill's broker, the test database, the relay and the gateway."""

    def start(*, pool: str = "solo", concurrency: int = 1, **extra_env: str) -> Started:
        env = base_env(
            DATABASE_URL=subprocess_database_url(application_name="kelabooking-drill-worker"),
            DB_CONN_MAX_AGE="0",
            CELERY_BROKER_URL=broker.url,
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(relay.port),
            SMS_GATEWAY_URL=gateway.url,
            SMS_GATEWAY_TOKEN="drill-gateway-token",
            OIDC_RP_KEY_DIR=str(tmp_path / "keys"),
            **extra_env,
        )
        name = f"worker{len(processes.started)}"
        return processes.start(name, celery_worker_args(name=name, pool=pool, concurrency=concurrency), env=env)

    return start


def book(*, email: str = "") -> Booking:
    """Hold and confirm a time through the services, as the booking pages do: each booking its own partner,
    organisation, customer and slot."""
    acting = acting_for(PartnerFactory(), organisation=OrganisationFactory(), customer=CustomerFactory())
    hold = booking_hold(acting=acting, slot_id=SlotFactory().pk)
    return booking_confirm(
        acting=acting,
        hold_id=hold.pk,
        contact=ContactDetails(phone=PHONE, email=email),
        idempotency_key=uuid.uuid4(),
    )


def message_of(booking: Booking, channel: str) -> Message:
    return Message.objects.get(key=f"booking:{booking.pk}:confirmation:{channel}")


def message_id_of(received) -> str:
    """The Message-ID header as sent; a long one arrives folded onto its own line."""
    return str(received["Message-ID"]).strip()


def status_of(message: Message) -> str:
    return Message.objects.values_list("status", flat=True).get(pk=message.pk)


# --- 1. The broker stops while bookings continue --------------------------------------------------------------------


def test_booking__broker_stopped_while_bookings_continue__every_message_arrives_exactly_once(
    broker, start_worker, relay, gateway, settings, caplog
) -> None:
    settings.MESSAGE_SWEEP_AGE_SECONDS = 0
    before = [book(email=f"ennen{n}@example.org") for n in range(3)]
    assert broker.queued() == 3  # each booking's send task waits in the broker: no worker runs yet

    broker.stop()
    with caplog.at_level(logging.WARNING, logger="kelabooking.tasks"):
        during = [book(email=f"katko{n}@example.org") for n in range(3)]
    bookings = before + during
    assert set(Booking.objects.values_list("status", flat=True)) == {Booking.Status.CONFIRMED}
    lost_nudges = [record for record in caplog.records if record.getMessage().startswith("Could not queue messages")]
    assert len(lost_nudges) == len(during), "each booking during the outage logs its lost nudge"

    broker.start()  # the same port, and nothing of what it held: no persistence
    assert broker.queued() == 0
    ids = sorted(Message.objects.values_list("pk", flat=True))
    assert len(ids) == 2 * len(bookings)  # an SMS and an e-mail each
    assert Message.objects.filter(status=Message.Status.PENDING).count() == len(ids)
    # Two sweeps before any worker runs, as two beat ticks would: every message is queued twice.
    assert sorted(messages_sweep()) == ids
    assert sorted(messages_sweep()) == ids
    worker = start_worker(pool="threads", concurrency=4)

    wait_for(
        lambda: Message.objects.filter(status=Message.Status.SENT).count() == len(ids),
        what="every message sent",
        log=worker,
        timeout=30,
    )
    wait_for(broker.drained, what="the duplicate send tasks are consumed too", timeout=15)
    assert messages_sweep() == []

    rows = list(Message.objects.order_by("pk"))
    assert {(row.status, row.attempts) for row in rows} == {(Message.Status.SENT, 1)}  # a repeat never got a claim
    emails = {message_id_of(received): received for received in relay.messages}
    sms = {request["key"]: request for request in gateway.requests}
    assert len(emails) == len(relay.messages) == len(bookings), "an e-mail went missing or arrived twice"
    assert len(sms) == len(gateway.requests) == len(bookings), "an SMS went missing or arrived twice"
    for booking in bookings:  # each to its own recipient, about its own booking
        received = emails[message_id(message_of(booking, "email"), domain=MAIL_DOMAIN)]
        assert (received["X-Envelope-To"], booking.reference in received["Subject"]) == (booking.contact_email, True)
        text = sms[f"kelabooking-{message_of(booking, 'sms').pk}"]
        assert (text["to"], booking.reference in text["text"]) == (PHONE, True)


# --- 2. A worker is killed in the middle of sending -----------------------------------------------------------------


def wait_until_claim_runs_out(message: Message) -> None:
    wait_for(
        lambda: Message.objects.due(now=clock.now()).filter(pk=message.pk).exists(),
        what="the dead worker's claim on the message runs out",
        timeout=10,
    )


def assert_claimed_not_sent(message: Message) -> None:
    """The worker took the message and has not marked it: it is between the relay's answer and the outbox update."""
    message.refresh_from_db()
    assert (message.status, message.attempts) == (Message.Status.PENDING, 1)
    assert message.claimed_until is not None
    assert message.claimed_until > clock.now()


def test_message__worker_killed_after_the_relay_took_the_email__the_repeat_has_the_same_message_id(
    broker, start_worker, relay, gateway, settings
) -> None:
    settings.MESSAGE_SWEEP_AGE_SECONDS = 0
    relay.stall_first = True
    first = start_worker(MESSAGE_CLAIM_SECONDS="3")
    booking = book(email="asiakas@example.org")
    email, sms = message_of(booking, "email"), message_of(booking, "sms")

    wait_for(relay.stalled.is_set, what="the relay accepts the e-mail", log=first, timeout=30)
    assert_claimed_not_sent(email)
    first.kill()
    relay.release()
    assert status_of(email) == Message.Status.PENDING

    wait_until_claim_runs_out(email)
    second = start_worker(MESSAGE_CLAIM_SECONDS="3")
    assert messages_sweep() == [email.pk]  # the SMS went out before the kill and is not sent again
    wait_for(lambda: status_of(email) == Message.Status.SENT, what="the repeat is sent", log=second, timeout=30)

    original, repeat = relay.messages
    assert message_id_of(original) == message_id_of(repeat) == message_id(email, domain=MAIL_DOMAIN)
    assert (repeat["Subject"], repeat.get_body(("plain",)).get_content()) == (
        original["Subject"],
        original.get_body(("plain",)).get_content(),
    )
    email.refresh_from_db()
    assert (email.status, email.attempts, email.claimed_until) == (Message.Status.SENT, 2, None)
    assert [request["key"] for request in gateway.requests] == [f"kelabooking-{sms.pk}"]
    assert status_of(sms) == Message.Status.SENT


def test_message__worker_killed_while_the_gateway_answers__the_repeat_has_the_same_idempotency_key(
    broker, start_worker, relay, gateway, settings
) -> None:
    settings.MESSAGE_SWEEP_AGE_SECONDS = 0
    gateway.stall_first = True
    first = start_worker(MESSAGE_CLAIM_SECONDS="3")
    booking = book()  # no e-mail address: the SMS only
    sms = message_of(booking, "sms")

    wait_for(gateway.stalled.is_set, what="the gateway takes the SMS", log=first, timeout=30)
    assert_claimed_not_sent(sms)
    first.kill()
    gateway.release()
    assert status_of(sms) == Message.Status.PENDING

    wait_until_claim_runs_out(sms)
    second = start_worker(MESSAGE_CLAIM_SECONDS="3")
    assert messages_sweep() == [sms.pk]
    wait_for(lambda: status_of(sms) == Message.Status.SENT, what="the repeat is sent", log=second, timeout=30)

    key = f"kelabooking-{sms.pk}"
    original, repeat = gateway.requests
    assert (original["key"], repeat["key"]) == (key, key)
    assert (repeat["id"], repeat["to"], repeat["text"]) == (original["id"], original["to"], original["text"])
    assert list(gateway.delivered) == [key]  # the gateway delivers it to the phone once
    sms.refresh_from_db()
    assert (sms.status, sms.attempts) == (Message.Status.SENT, 2)
    assert relay.messages == []


@pytest.mark.parametrize(
    ("gateway_answers_after", "within_the_soft_shutdown"), [(5, True), (60, False)], ids=["finishes", "cut-short"]
)
def test_message__worker_stopped_with_sigterm_while_the_gateway_holds_the_sms__soft_shutdown(
    broker, start_worker, relay, gateway, settings, monkeypatch, gateway_answers_after, within_the_soft_shutdown
) -> None:
    """As Kubernetes or `docker stop` stops the worker container: SIGTERM to the worker's main process alone, with
    REMAP_SIGTERM=SIGQUIT as the image sets it. The soft shutdown gives the running send its time: a send that ends
    within it is recorded as sent; one that does not is cancelled, neither marked sent nor failed but left to its
    claim, and sent again under the same idempotency key once the claim has run out. Either way the worker is gone
    within the grace the manifests give it."""
    settings.MESSAGE_SWEEP_AGE_SECONDS = 0
    monkeypatch.setattr("tests.drills.STALL_SECONDS", gateway_answers_after)
    gateway.stall_first = True
    first = start_worker(pool="prefork", REMAP_SIGTERM="SIGQUIT", SMS_GATEWAY_TIMEOUT="120", MESSAGE_CLAIM_SECONDS="40")
    sms = message_of(book(), "sms")
    key = f"kelabooking-{sms.pk}"
    wait_for(gateway.stalled.is_set, what="the gateway takes the SMS", log=first, timeout=30)

    stopped_at = time.monotonic()
    os.kill(first.process.pid, signal.SIGTERM)  # the container's PID 1 only, not its pool's children
    first.process.wait(timeout=settings.CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT + 15)
    took = time.monotonic() - stopped_at
    assert took < settings.CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT + 15  # the worker Deployment's grace is 45 s
    assert "Initiating Soft Shutdown" in first.log.read_text()
    if within_the_soft_shutdown:
        sms.refresh_from_db()
        assert (sms.status, sms.attempts, sms.claimed_until) == (Message.Status.SENT, 1, None)
        assert [request["key"] for request in gateway.requests] == [key]
        return

    assert_claimed_not_sent(sms)
    gateway.release()
    wait_for(
        lambda: Message.objects.due(now=clock.now()).filter(pk=sms.pk).exists(),
        what="the stopped worker's claim on the message runs out",
        timeout=45,
    )
    second = start_worker()
    wait_for(lambda: status_of(sms) == Message.Status.SENT, what="the repeat is sent", log=second, timeout=30)
    assert [request["key"] for request in gateway.requests] == [key, key]
    assert list(gateway.delivered) == [key]
    sms.refresh_from_db()
    assert (sms.status, sms.attempts) == (Message.Status.SENT, 2)


# --- 3. The web server's database connections are cut ---------------------------------------------------------------


class WebServer:
    """gunicorn as the web container runs it (three sync workers, persistent connections with health checks), on the
    test database and the drill's broker."""

    def __init__(self, started: Started, port: int) -> None:
        self.started = started
        self.url = f"http://127.0.0.1:{port}"

    def backends(self, *, waiting_for_a_lock: bool = False) -> list[str]:
        """The current statement of each of the server's database connections (seen from the test's connection)."""
        sql = "SELECT query FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s"
        if waiting_for_a_lock:
            sql += " AND wait_event_type = 'Lock'"
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # read once per transaction otherwise
            cursor.execute(sql, [WEB_APPLICATION_NAME])
            return [row[0] for row in cursor.fetchall()]

    def cut_connections(self) -> int:
        """Terminate every database connection of the server, as a failover or a restarted PostgreSQL would; waits
        up to a second for each to be gone."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 1000)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = %s",
                [WEB_APPLICATION_NAME],
            )
            return cursor.fetchone()[0]


@pytest.fixture
def web(processes, broker, tmp_path, settings) -> WebServer:
    port = free_port()
    env = base_env(
        SECRET_KEY=settings.SECRET_KEY,  # the sessions built here are signed with it
        DATABASE_URL=subprocess_database_url(application_name=WEB_APPLICATION_NAME),
        CELERY_BROKER_URL=broker.url,
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="3",
        OIDC_RP_KEY_DIR=str(tmp_path / "keys"),
    )
    return WebServer(start_gunicorn(processes, env=env), port)


def url(name: str, **kwargs: str) -> str:
    """The English page: threads do not share the test's active language."""
    with translation.override("en"):
        return reverse(name, kwargs=kwargs or None)


class Partner:
    """A partner's browser against the web server: signed in, acting for an organisation, with a customer locked
    (the session is built in the database, as Suomi.fi login, Valtuudet and the customer step would leave it)."""

    def __init__(self, web: WebServer, *, service_line: ServiceLine, customer: Customer) -> None:
        self.web = web
        self.user = PartnerFactory()
        organisation = OrganisationFactory()
        self.customer = customer
        session = SessionStore()
        session.update(
            signed_in_session(
                self.user,
                organisation=organisation,
                customer=customer,
                draft={"service_line_id": service_line.pk, "language": "fi", "interpreter_language": ""},
            )
        )
        session.save()
        self.session_key = session.session_key
        self.http = requests.Session()
        self.http.cookies.set(settings.SESSION_COOKIE_NAME, self.session_key)
        self.csrf = ""
        self.confirm_form: dict[str, str] = {}

    def get(self, name: str, **kwargs: str) -> requests.Response:
        response = self.http.get(self.web.url + url(name, **kwargs), timeout=REQUEST_TIMEOUT)
        self.csrf = csrf_token(response.text) or self.csrf
        return response

    def post(self, name: str, data: dict[str, object]) -> requests.Response:
        return self.http.post(
            self.web.url + url(name),
            data=data,
            headers={"X-CSRFToken": self.csrf},
            allow_redirects=False,
            timeout=REQUEST_TIMEOUT,
        )

    def reach_the_check_page(self, slot: Slot) -> None:
        """Pick the time (a hold), give the contact details, and open the check page with its confirm form."""
        assert self.get("bookings:time").status_code == 200
        assert self.post("bookings:time", {"slot": slot.pk}).headers["Location"] == url("bookings:contact")
        contact = {"phone": "040 123 4567", "email": f"asiakas{self.customer.pk}@example.org"}
        assert self.post("bookings:contact", contact).headers["Location"] == url("bookings:check")
        check = self.get("bookings:check")
        assert check.status_code == 200
        self.confirm_form = confirm_form(check.text)

    def confirm(self) -> requests.Response:
        return self.post("bookings:check", self.confirm_form)

    def booking(self) -> Booking:
        return Booking.objects.get(pk=self.confirm_form["hold"])


class InFlight(threading.Thread):
    """A request sent from its own thread, so that the test can act while the server works on it."""

    def __init__(self, send: Callable[[], requests.Response]) -> None:
        super().__init__(daemon=True)
        self.send = send
        self.outcome: requests.Response | requests.RequestException | None = None

    def run(self) -> None:
        try:
            self.outcome = self.send()
        except requests.RequestException as error:  # the outcome under test
            self.outcome = error

    def answer(self) -> requests.Response | requests.RequestException | None:
        self.join(timeout=REQUEST_TIMEOUT + 5)
        assert not self.is_alive(), "the request never got an answer"
        return self.outcome


def wait_until_a_request_waits_for_the_lock(web: WebServer) -> None:
    """One server connection waits for a lock: the one the test holds."""
    wait_for(lambda: web.backends(waiting_for_a_lock=True), what="the server's request waits for the test's lock")
    assert len(web.backends(waiting_for_a_lock=True)) == 1


def assert_nothing_half_written() -> None:
    """Every confirmed booking has its SMS and e-mail in the outbox and its booking_confirmed audit event, once; every
    other booking is still a hold with neither."""
    for booking in Booking.objects.all():
        channels = sorted(
            Message.objects.filter(key__startswith=f"booking:{booking.pk}:confirmation:").values_list(
                "channel", flat=True
            )
        )
        events = AuditEvent.objects.filter(booking=booking, action=AuditEvent.Action.BOOKING_CONFIRMED).count()
        if booking.status == Booking.Status.CONFIRMED:
            assert (channels, events) == (["email", "sms"], 1), booking.reference
        else:
            assert (booking.status, channels, events) == (Booking.Status.HELD, [], 0), booking.reference
    assert Message.objects.count() == 2 * Booking.objects.filter(status=Booking.Status.CONFIRMED).count()


def test_booking__connections_cut_between_requests_and_mid_confirm__nothing_half_written_next_request_succeeds(
    web,
) -> None:
    slot = SlotFactory()
    partner = Partner(web, service_line=slot.service_line, customer=CustomerFactory())
    partner.reach_the_check_page(slot)

    # Between requests: the server keeps its connections open (CONN_MAX_AGE); they are cut while idle.
    assert web.backends(), "the server keeps no connection open between requests"
    assert web.cut_connections() >= 1
    for _request in range(4):  # whichever worker answers, its next query finds a dead connection and reconnects
        assert partner.get("bookings:check").status_code == 200

    # Mid-confirm: the partner's row is locked here. Django's foreign keys on PostgreSQL are checked at COMMIT
    # (DEFERRABLE INITIALLY DEFERRED), so the confirm stops at its COMMIT, when the audit event's reference to the
    # partner is checked: the booking marked confirmed, its messages queued, its audit event written. Then its
    # connection is cut.
    with transaction.atomic():
        User.objects.select_for_update().get(pk=partner.user.pk)
        in_flight = InFlight(partner.confirm)
        in_flight.start()
        wait_until_a_request_waits_for_the_lock(web)
        assert partner.booking().status == Booking.Status.HELD  # nothing of it is visible yet
        assert web.cut_connections() >= 1
    response = in_flight.answer()

    booked = isinstance(response, requests.Response) and response.status_code == 302
    assert partner.booking().status == (Booking.Status.CONFIRMED if booked else Booking.Status.HELD)
    assert_nothing_half_written()

    # The next request: the partner presses confirm again (the same form, the same idempotency key).
    again = partner.confirm()
    assert again.status_code == 302, again.text[:2000]
    booking = partner.booking()
    assert again.headers["Location"] == url("bookings:done", reference=booking.reference)
    assert partner.get("bookings:done", reference=booking.reference).status_code == 200
    assert booking.status == Booking.Status.CONFIRMED
    assert str(booking.idempotency_key) == partner.confirm_form["idempotency_key"]
    assert_nothing_half_written()


def test_booking__connection_cut_while_the_session_is_saved_after_the_confirm__the_partner_sees_the_booking(
    web,
) -> None:
    slot = SlotFactory()
    partner = Partner(web, service_line=slot.service_line, customer=CustomerFactory())
    partner.reach_the_check_page(slot)

    # The session's row is locked here: the confirm commits, then its session save waits, and its connection is cut.
    with transaction.atomic():
        Session.objects.select_for_update().get(pk=partner.session_key)
        in_flight = InFlight(partner.confirm)
        in_flight.start()
        wait_until_a_request_waits_for_the_lock(web)
        assert partner.booking().status == Booking.Status.CONFIRMED  # the booking has committed
        assert web.cut_connections() >= 1
    response = in_flight.answer()

    assert_nothing_half_written()
    booking = partner.booking()
    assert isinstance(response, requests.Response)
    # The booking was made: the partner is told so (ResilientSessionMiddleware's promise), not given an error page.
    assert (response.status_code, response.headers.get("Location")) == (
        302,
        url("bookings:done", reference=booking.reference),
    )


def test_booking__connections_cut_again_and_again_under_load__nothing_half_written_next_requests_succeed(
    web,
) -> None:
    slot = SlotFactory(capacity=6)  # six partners on one slot: their confirms queue for its lock
    partners = [Partner(web, service_line=slot.service_line, customer=CustomerFactory()) for _ in range(6)]
    for partner in partners:
        partner.reach_the_check_page(slot)

    storm_over = threading.Event()
    cuts: list[int] = []
    answers: list[int | str] = []
    rng = random.Random(20260401)

    def cut_again_and_again() -> None:
        try:
            while not storm_over.is_set():
                cuts.append(web.cut_connections())
                storm_over.wait(rng.uniform(0.02, 0.1))
        finally:
            connection.close()  # this thread's own connection

    def confirm_three_times(partner: Partner) -> None:
        for _submit in range(3):  # a partner pressing confirm again when the page fails
            try:
                answers.append(partner.confirm().status_code)
            except requests.RequestException as error:
                answers.append(type(error).__name__)
            time.sleep(0.05)

    cutter = threading.Thread(target=cut_again_and_again, daemon=True)
    confirmers = [threading.Thread(target=confirm_three_times, args=(p,), daemon=True) for p in partners]
    cutter.start()
    for thread in confirmers:
        thread.start()
    for thread in confirmers:
        thread.join(timeout=3 * REQUEST_TIMEOUT)
    storm_over.set()
    cutter.join(timeout=10)
    assert not any(thread.is_alive() for thread in [cutter, *confirmers])
    assert sum(cuts) > 0
    print(f"storm: {sum(cuts)} connections cut; answers {Counter(answers)}")

    assert Booking.objects.count() == len(partners)
    assert_nothing_half_written()
    for partner in partners:  # the next request of each partner books, or finds the booking made
        again = partner.confirm()
        assert again.status_code == 302, again.text[:2000]
        assert again.headers["Location"] == url("bookings:done", reference=partner.booking().reference)
    assert set(Booking.objects.values_list("status", flat=True)) == {Booking.Status.CONFIRMED}
    assert_nothing_half_written()
