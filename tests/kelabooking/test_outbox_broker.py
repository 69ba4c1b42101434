"""The outbox against a real broker: a broker outage delays a message but never fails the change or loses it.

The worker is a real `celery worker` process reading the same PostgreSQL test database, so these tests need
PostgreSQL and Redis (CI has both).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from django.db import transaction
from django.utils import timezone

from kelabooking.models import Message
from kelabooking.services import messages_enqueue
from kelabooking.tasks import messages_dispatch, messages_sweep
from tests.conftest import IN_CI
from tests.drills import (
    CeleryBroker,
    Processes,
    SmsGateway,
    Started,
    base_env,
    celery_worker_args,
    claim_redis,
    subprocess_database_url,
    wait_for,
)
from tests.kelabooking.test_outbox import enqueue, fields

pytestmark = pytest.mark.django_db(transaction=True)

DOWN_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture
def broker(redis_url: str) -> Iterator[Callable[..., str]]:
    """`broker(up)` queues this process's tasks on REDIS_URL's database (a run's own: emptied first, and refused when
    it holds anybody else's keys), or on a dead broker; eager mode again afterwards."""
    try:
        client = claim_redis(redis_url, owner="tests/kelabooking/test_outbox_broker.py")
    except ValueError as error:  # the rule of the marked tests (tests/conftest.py): skip locally, fail in CI
        (pytest.fail if IN_CI else pytest.skip)(f"{error}: set REDIS_URL to a free database")
    current: list[CeleryBroker] = []

    def use(up: bool = True) -> str:
        if current:
            current.pop().restore()
        current.append(CeleryBroker(redis_url if up else DOWN_BROKER))
        return redis_url

    yield use
    if current:
        current.pop().restore()
    client.flushdb()


@pytest.fixture
def sms_gateway() -> Iterator[SmsGateway]:
    gateway = SmsGateway()
    yield gateway
    gateway.close()


@pytest.fixture
def start_worker(broker, smtp_sink, sms_gateway, tmp_path) -> Iterator[Callable[..., Started]]:
    """Start real `celery worker` processes on the Redis broker and this test's PostgreSQL database."""
    broker_url = broker(True)
    processes = Processes(workdir=tmp_path)

    def start(**extra_env: str) -> Started:
        env = base_env(
            DATABASE_URL=subprocess_database_url(),
            DB_CONN_MAX_AGE="0",
            CELERY_BROKER_URL=broker_url,
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(smtp_sink.port),
            SMS_GATEWAY_URL=sms_gateway.url,
            SMS_GATEWAY_TOKEN="gateway-test-token",
            OIDC_RP_KEY_DIR=str(tmp_path / "keys"),
            **extra_env,
        )
        name = f"worker{len(processes.started)}"
        return processes.start(name, celery_worker_args(name=name), env=env)

    yield start
    processes.stop_all()


@pytest.fixture
def worker(start_worker) -> Started:
    return start_worker()


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
    wait_for(lambda: Message.objects.get(pk=message.pk).status == Message.Status.SENT, what="sent", log=worker)
    wait_for(lambda: len(smtp_sink.messages) == 1, what="the relay has it", log=worker)

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
    wait_for(lambda: Message.objects.get(pk=message.pk).status == Message.Status.SENT, what="sent", log=worker)
    [request] = sms_gateway.requests
    assert (request["to"], request["text"], request["key"]) == (
        "+358401234567",
        "Kela soittaa",
        f"kelabooking-{message.pk}",
    )
    assert request["auth"] == "Bearer gateway-test-token"


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
    wait_for(lambda: len(smtp_sink.messages) == 1 and len(sms_gateway.requests) == 1, what="both sent", log=worker)
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
    wait_for(lambda: Message.objects.filter(status=Message.Status.SENT).count() == 2, what="both marked sent")


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
    wait_for(lambda: Message.objects.filter(status=Message.Status.SENT).count() == 2, what="both marked sent")
    assert messages_sweep() == []
    time.sleep(1.0)
    assert len(smtp_sink.messages) == 1
    assert len(sms_gateway.requests) == 1
