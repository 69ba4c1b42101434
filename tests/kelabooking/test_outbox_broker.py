"""The outbox against a real broker: a broker outage delays a message but never fails the change or loses it.

The worker is a real `celery worker` process reading the same PostgreSQL test database, so these tests need
PostgreSQL and Redis (CI has both).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.db import connection, transaction
from django.utils import timezone
from kombu import pools

from kelabooking import celery_app
from kelabooking.models import Message
from kelabooking.services import messages_enqueue
from kelabooking.tasks import messages_dispatch, messages_sweep
from tests.kelabooking.test_outbox import enqueue, fields

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
DOWN_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def _reset_pools() -> None:
    """Forget the connections made to the previous broker URL (Celery caches them per app and per URL)."""
    pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def _use_broker(url: str) -> None:
    celery_app.conf.update(broker_url=url, task_always_eager=False, broker_connection_retry=False)
    _reset_pools()


@pytest.fixture
def broker(redis_url: str, monkeypatch) -> Iterator[callable]:
    """Switch this process's Celery app to a real broker (or a dead one); restore eager mode afterwards."""
    test_broker = redis_url.rsplit("/", 1)[0] + "/15"
    redis.Redis.from_url(test_broker).flushdb()
    saved = {key: celery_app.conf[key] for key in ("broker_url", "task_always_eager", "broker_connection_retry")}
    yield lambda up=True: _use_broker(test_broker if up else DOWN_BROKER) or test_broker
    celery_app.conf.update(saved)
    _reset_pools()


def _database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class SmsGateway:
    """An SMS gateway speaking the JSON protocol: it delivers each idempotency key once, however often it is sent."""

    def __init__(self, httpserver) -> None:
        self.url = httpserver.url_for("/sms")
        self.requests: list[dict] = []
        self.delivered: dict[str, dict] = {}
        self.delay_first = 0.0
        httpserver.expect_request("/sms", method="POST").respond_with_handler(self._handle)

    def _handle(self, request):
        from werkzeug import Response

        payload = request.get_json()
        key = request.headers.get("Idempotency-Key", "")
        self.requests.append({"key": key, "auth": request.headers.get("Authorization"), **payload})
        if len(self.requests) == 1 and self.delay_first:
            time.sleep(self.delay_first)  # the worker is killed while it waits for this answer
        self.delivered.setdefault(key, payload)
        return Response(json.dumps({"id": key, "status": "accepted"}), status=202, mimetype="application/json")


@pytest.fixture
def sms_gateway(httpserver) -> SmsGateway:
    return SmsGateway(httpserver)


@pytest.fixture
def start_worker(broker, smtp_sink, sms_gateway, tmp_path) -> Iterator[callable]:
    """Start real `celery worker` processes on the Redis broker and this test's PostgreSQL database."""
    broker_url = broker(True)
    processes: list[subprocess.Popen] = []

    def start(**extra_env: str) -> subprocess.Popen:
        env = {
            "PATH": os.environ["PATH"],
            "DEBUG": "1",
            "DATABASE_URL": _database_url(),
            "CELERY_BROKER_URL": broker_url,
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp_sink.port),
            "SMS_GATEWAY_URL": sms_gateway.url,
            "SMS_GATEWAY_TOKEN": "gateway-test-token",
            "DB_CONN_MAX_AGE": "0",
            **extra_env,
        }
        log = open(tmp_path / f"worker-{len(processes)}.log", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(  # noqa: S603 - our own worker
            [sys.executable, "-m", "celery", "-A", "kelabooking", "worker", "--pool", "solo", "--loglevel", "INFO"]
            + ["--without-heartbeat", "--without-mingle", "--without-gossip"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def worker(start_worker) -> subprocess.Popen:
    return start_worker()


def wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.redis
def test_message__enqueue_while_broker_down__change_commits_and_message_waits(broker) -> None:
    broker(False)
    with transaction.atomic():
        message = enqueue()
    message.refresh_from_db()
    assert message.status == Message.Status.PENDING
    assert message.attempts == 0


def _queued_tasks(broker_url: str) -> list[str]:
    return [json.loads(raw)["headers"]["task"] for raw in redis.Redis.from_url(broker_url).lrange("celery", 0, -1)]


def _queued_task_arguments(broker_url: str) -> list[tuple[str, object]]:
    queued = [json.loads(raw) for raw in redis.Redis.from_url(broker_url).lrange("celery", 0, -1)]
    return [(task["headers"]["task"], task["headers"]["argsrepr"]) for task in queued]


@pytest.mark.redis
def test_message__committed__its_send_task_is_queued_with_its_ids_and_nothing_on_rollback(broker) -> None:
    broker_url = broker()
    with transaction.atomic():
        first = enqueue(key="test:1:confirmation:email")
        assert _queued_tasks(broker_url) == []  # nothing before the commit
    with transaction.atomic():
        second = enqueue(key="test:2:confirmation:email")

    def enqueue_then_fail() -> None:
        with transaction.atomic():
            enqueue(key="test:3:confirmation:email")
            raise RuntimeError("the change that caused the message failed")

    with pytest.raises(RuntimeError):
        enqueue_then_fail()

    assert list(reversed(_queued_task_arguments(broker_url))) == [
        ("kelabooking.tasks.send_messages_task", f"([{first.pk}],)"),
        ("kelabooking.tasks.send_messages_task", f"([{second.pk}],)"),
    ]


@pytest.mark.redis
def test_booking__confirmed__one_send_task_with_both_message_ids_after_commit(broker) -> None:
    broker_url = broker()

    booking = _confirmed_booking(language="fi")

    ids = sorted(Message.objects.filter(key__startswith=f"booking:{booking.pk}:").values_list("pk", flat=True))
    assert len(ids) == 2  # the SMS and the e-mail
    assert _queued_task_arguments(broker_url) == [("kelabooking.tasks.send_messages_task", f"({ids},)")]


@pytest.mark.redis
def test_booking__confirmed_while_broker_down__booked_and_the_sweep_queues_its_messages_later(broker, settings) -> None:
    settings.MESSAGE_SWEEP_AGE_SECONDS = 0
    broker(False)

    booking = _confirmed_booking(language="fi")  # the publish after commit fails: logged, not raised

    booking.refresh_from_db()
    assert booking.status == "confirmed"
    written = Message.objects.filter(key__startswith=f"booking:{booking.pk}:")
    assert set(written.values_list("status", flat=True)) == {Message.Status.PENDING}
    broker_url = broker(True)
    assert _queued_tasks(broker_url) == []  # nothing reached the broker while it was down

    ids = sorted(written.values_list("pk", flat=True))
    assert messages_sweep() == ids
    assert _queued_task_arguments(broker_url) == [("kelabooking.tasks.send_messages_task", f"({ids},)")]


@pytest.mark.redis
def test_message__dispatch__hands_due_messages_to_send_tasks_in_batches(broker) -> None:
    broker(False)  # written while the broker is down: no nudge reaches it
    with transaction.atomic():
        written = messages_enqueue(messages=[Message(**fields(f"test:{n}:decision:email")) for n in range(12)])
    Message.objects.filter(pk=written[-1].pk).update(next_attempt_at=timezone.now() + dt.timedelta(minutes=5))
    broker_url = broker(True)

    dispatched = messages_dispatch()

    ids = sorted(message.pk for message in written)
    assert dispatched == ids[:11]  # the last one is not due yet
    queued = [json.loads(raw) for raw in reversed(redis.Redis.from_url(broker_url).lrange("celery", 0, -1))]
    assert [task["headers"]["task"] for task in queued] == ["kelabooking.tasks.send_messages_task"] * 2
    assert [task["headers"]["argsrepr"] for task in queued] == [f"({ids[:10]},)", f"({ids[10:11]},)"]


@pytest.mark.postgres
@pytest.mark.redis
def test_message__broker_back__sweep_delivers_exactly_once(broker, worker, smtp_sink, settings) -> None:
    settings.MESSAGE_SWEEP_AGE_SECONDS = 0
    broker(False)
    with transaction.atomic():
        message = enqueue(recipient="asiakas@example.org")
    assert Message.objects.get(pk=message.pk).status == Message.Status.PENDING

    broker(True)
    assert messages_sweep() == [message.pk]
    assert wait_for(lambda: Message.objects.get(pk=message.pk).status == Message.Status.SENT)
    assert wait_for(lambda: len(smtp_sink.messages) == 1)

    assert messages_sweep() == []  # sent: nothing left to sweep
    time.sleep(1.0)
    assert [received["X-Envelope-To"] for received in smtp_sink.messages] == ["asiakas@example.org"]


@pytest.mark.postgres
@pytest.mark.redis
def test_message__sms_through_a_real_worker__reaches_the_gateway_with_key_and_token(
    broker, worker, sms_gateway
) -> None:
    with transaction.atomic():
        message = enqueue(key="sms:1", channel=Message.Channel.SMS, recipient="+358401234567", body="Kela soittaa")
    assert wait_for(lambda: Message.objects.get(pk=message.pk).status == Message.Status.SENT)
    [request] = sms_gateway.requests
    assert (request["to"], request["text"], request["key"]) == (
        "+358401234567",
        "Kela soittaa",
        f"kelabooking-{message.pk}",
    )
    assert request["auth"] == "Bearer gateway-test-token"


@pytest.mark.postgres
@pytest.mark.redis
def test_message__worker_killed_while_sending__delivered_once_after_the_claim_runs_out(
    broker, start_worker, sms_gateway, settings
) -> None:
    settings.MESSAGE_SWEEP_AGE_SECONDS = 0
    sms_gateway.delay_first = 3.0
    first = start_worker(MESSAGE_CLAIM_SECONDS="2")
    with transaction.atomic():
        message = enqueue(key="sms:2", channel=Message.Channel.SMS, recipient="+358401234567", body="Muistutus")
    assert wait_for(lambda: len(sms_gateway.requests) == 1), "the worker never called the gateway"
    first.send_signal(signal.SIGKILL)  # dies mid-send: the gateway got the message, we never learnt it
    first.wait(timeout=10)
    assert Message.objects.get(pk=message.pk).status == Message.Status.PENDING

    time.sleep(2.5)  # the dead worker's claim runs out
    start_worker(MESSAGE_CLAIM_SECONDS="2")
    assert messages_sweep() == [message.pk]
    assert wait_for(lambda: Message.objects.get(pk=message.pk).status == Message.Status.SENT)
    keys = [request["key"] for request in sms_gateway.requests]
    assert keys == [f"kelabooking-{message.pk}"] * 2  # sent twice, with the same idempotency key…
    assert list(sms_gateway.delivered) == [f"kelabooking-{message.pk}"]  # …and delivered to the phone once
    assert Message.objects.get(pk=message.pk).attempts == 2


def _confirmed_booking(*, language: str, email: str = "asiakas@example.org"):
    """Hold and confirm a booking through the services, as the booking pages do."""
    from bookings.services import booking_confirm, booking_hold
    from bookings.services.booking import ContactDetails
    from tests.factories import CustomerFactory, OrganisationFactory, PartnerFactory, SlotFactory, acting_for

    acting = acting_for(PartnerFactory(), organisation=OrganisationFactory(), customer=CustomerFactory())
    hold = booking_hold(acting=acting, slot_id=SlotFactory(language=language).pk)
    return booking_confirm(
        acting=acting,
        hold_id=hold.pk,
        contact=ContactDetails(phone="+358401234567", email=email, interpreter_language="so"),
        idempotency_key=__import__("uuid").uuid4(),
    )


@pytest.mark.postgres
@pytest.mark.redis
def test_booking__confirmed_with_a_real_worker__sms_and_email_with_calendar_arrive(
    broker, worker, smtp_sink, sms_gateway
) -> None:
    booking = _confirmed_booking(language="sv")
    assert wait_for(lambda: len(smtp_sink.messages) == 1 and len(sms_gateway.requests) == 1)
    email = smtp_sink.messages[0]
    assert booking.reference in email["Subject"]
    assert email["X-Envelope-To"] == "asiakas@example.org"
    plain = email.get_body(preferencelist=("plain",)).get_content()
    assert "FPA" in plain  # Swedish: the booking's service language
    assert "somaliska" in plain
    calendar = next(part for part in email.walk() if part.get_content_type() == "text/calendar")
    assert f"UID:{booking.reference}" in calendar.get_content().replace("\r\n ", "")
    assert booking.reference in sms_gateway.requests[0]["text"]
    # The worker marks a message sent once the relay has taken it: a moment after the sink has it.
    assert wait_for(lambda: Message.objects.filter(status=Message.Status.SENT).count() == 2)


@pytest.mark.postgres
@pytest.mark.redis
def test_booking__confirmed_while_broker_down__succeeds_and_messages_arrive_once_after_sweep(
    broker, start_worker, smtp_sink, sms_gateway, settings
) -> None:
    settings.MESSAGE_SWEEP_AGE_SECONDS = 0
    broker(False)
    booking = _confirmed_booking(language="fi")
    booking.refresh_from_db()
    assert booking.status == "confirmed"
    assert set(Message.objects.values_list("status", flat=True)) == {Message.Status.PENDING}

    broker(True)
    start_worker()
    assert len(messages_sweep()) == 2
    assert wait_for(lambda: Message.objects.filter(status=Message.Status.SENT).count() == 2)
    assert messages_sweep() == []
    time.sleep(1.0)
    assert len(smtp_sink.messages) == 1
    assert len(sms_gateway.requests) == 1
