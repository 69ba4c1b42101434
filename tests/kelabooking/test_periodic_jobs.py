"""Every periodic job started twice at once (two beats during a rollout) has its effect once: each job runs in two
threads, each with its own database connection, interleaved where a second run would do harm.

- retention and the registry sync hold a lock in the database (kelabooking/jobs.py): the second run does nothing;
- reminders claim each booking (its row locked, `reminded_at` set once): one reminder per booking;
- slot generation is idempotent by the slots' unique constraint;
- the sweep hands a message to a send that claims it (tests/kelabooking/test_outbox.py: sent only once).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator

import pytest
from celery.result import allow_join_result
from django.db import connection

from bookings.models import Booking, OpeningRule, Slot
from bookings.services import bookings_remind, reminders, slots_generate
from bookings.services import slots as slot_generation
from kelabooking import clock, retention
from kelabooking.jobs import job_lock
from kelabooking.models import JobLock, Message, RetentionRun
from kelabooking.tasks import retention_run_task
from registry.models import Organisation, SyncRun
from registry.tasks import sync_registry_task
from tests.factories import BookingFactory, ServiceLineFactory, SlotFactory
from tests.registry.test_sync import FakePrh
from tests.registry.test_sync import populated as populated  # noqa: F401 - fixtures
from tests.registry.test_sync import prh as prh  # noqa: F401

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WAIT = 10  # seconds any thread waits for the other at most


class Run(threading.Thread):
    """One start of a job, in its own thread (and so on its own database connection)."""

    def __init__(self, job: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self.job = job
        self.result: object = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.job()
        except BaseException as error:  # reported by outcome()
            self.error = error
        finally:
            connection.close()

    def outcome(self) -> object:
        self.join(timeout=3 * WAIT)
        assert not self.is_alive(), "the run never ended"
        if self.error is not None:
            raise self.error
        return self.result


@pytest.fixture(autouse=True)
def joins_as_found() -> Iterator[None]:
    """Celery's `Task.apply` runs an eager task inside `denied_join_result()`, which sets a process-wide "a join would
    block" flag and puts back what it found: two eager runs in two threads (below) can leave it set. Each test here
    ends with the flag as it began (Celery's own `allow_join_result`), so no later test meets "Never call
    result.get() within a task!"."""
    with allow_join_result():
        yield


def value(result) -> object:
    """An eagerly applied task's outcome (Celery's `EagerResult`), its exception raised, without `get()`: after two
    runs in two threads the join flag above may be set."""
    if result.failed():
        raise result.result
    return result.result


def first_run_holds_while_second_starts(
    monkeypatch, module: object, name: str, task: Callable[[], object]
) -> tuple[object, object]:
    """Start `task` twice: the second while the first is inside `module.name` (its work), which waits for the second
    to end (or WAIT seconds, when the second is stuck doing the same work) before doing it."""
    real = getattr(module, name)
    inside, second_done = threading.Event(), threading.Event()

    def work(*args, **kwargs):
        if not inside.is_set():
            inside.set()
            second_done.wait(timeout=WAIT)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, work)
    first = Run(task)
    first.start()
    assert inside.wait(timeout=WAIT), "the first run never started its work"
    second = Run(task)
    second.start()
    second.join(timeout=WAIT)
    second_done.set()
    return first.outcome(), second.outcome()


def test_retention__started_twice_at_once__one_run_removes_once(monkeypatch) -> None:
    now = clock.now()
    BookingFactory.held(expires_at=now - dt.timedelta(days=2))
    BookingFactory.held(expires_at=now - dt.timedelta(days=3))

    first, second = first_run_holds_while_second_starts(
        monkeypatch, retention, "retention_run", retention_run_task.apply
    )

    assert value(first)["expired_holds"] == 2
    assert value(second) is None  # the lock was held: nothing done, nothing recorded
    assert RetentionRun.objects.count() == 1
    assert not Booking.objects.exists()
    lock = JobLock.objects.get(name="retention")
    assert (lock.locked_until, lock.finished_at is not None) == (None, True)
    assert value(retention_run_task.apply())["expired_holds"] == 0  # released: the next night runs


def test_registry_sync__started_twice_at_once__one_sync_changes_once(monkeypatch, populated: FakePrh) -> None:
    import registry.tasks

    first, second = first_run_holds_while_second_starts(
        monkeypatch, registry.tasks, "registry_sync", sync_registry_task.apply
    )

    run = SyncRun.objects.get()
    assert (value(first), value(second)) == (run.pk, None)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert len(run.added) == Organisation.objects.count() == 2


def test_registry_sync__failed_run__releases_the_lock_for_the_retry(populated: FakePrh) -> None:
    from werkzeug import Response

    from tests.registry.test_sync import KUNTA

    populated.page_overrides[(KUNTA, 1)] = Response("Service Unavailable", status=503)
    with pytest.raises(Exception, match="503"):
        value(sync_registry_task.apply())
    del populated.page_overrides[(KUNTA, 1)]
    assert value(sync_registry_task.apply()) == SyncRun.objects.get(status=SyncRun.Status.SUCCEEDED).pk


def test_job_lock__held_past_its_lease__taken_by_the_next_run() -> None:
    """A run whose worker died never releases the lock: it runs out at the end of the lease."""
    run_out = dt.timedelta(seconds=-1)  # a lease that has already run out
    with job_lock("demo", lease=run_out) as first, job_lock("demo", lease=dt.timedelta(minutes=5)) as second:
        assert (first, second) == (True, True)
    lease = dt.timedelta(minutes=5)
    with job_lock("demo", lease=lease) as first, job_lock("demo", lease=lease) as second:
        assert (first, second) == (True, False)


def test_reminders__started_twice_at_once__one_reminder_per_booking(monkeypatch) -> None:
    local_noon = clock.localnow().replace(hour=12, minute=0, second=0, microsecond=0)
    now = local_noon.astimezone(dt.UTC)
    bookings = [
        BookingFactory.confirmed(slot=SlotFactory(starts_at=local_noon + dt.timedelta(days=1, minutes=45 * index)))
        for index in range(4)
    ]
    both_listed = threading.Barrier(2, timeout=WAIT)
    real = reminders.booking_remind

    def remind(**kwargs):
        if kwargs["booking_id"] == bookings[0].pk:  # each run has listed the same due bookings
            both_listed.wait()
        return real(**kwargs)

    monkeypatch.setattr(reminders, "booking_remind", remind)
    runs = [Run(lambda: bookings_remind(now=now)) for _ in range(2)]
    for run in runs:
        run.start()

    assert sum(run.outcome() for run in runs) == len(bookings)
    for booking in bookings:
        keys = Message.objects.filter(key__startswith=f"booking:{booking.pk}:reminder:").values_list("key", flat=True)
        assert list(keys) == [f"booking:{booking.pk}:reminder:sms"]  # the booking has a phone number only


def test_slot_generation__started_twice_at_once__each_slot_once(monkeypatch) -> None:
    line = ServiceLineFactory()
    today = clock.localnow().date()
    for weekday in range(5):
        OpeningRule.objects.create(
            service_line=line,
            language="fi",
            weekday=weekday,
            opens_at=dt.time(9),
            closes_at=dt.time(12),
            agents=2,
            valid_from=today,
        )
    both_planned = threading.Barrier(2, timeout=WAIT)
    real = slot_generation._lock

    def lock(*args, **kwargs):  # each run has read the slots there are (none) and planned to create them all
        both_planned.wait()
        return real(*args, **kwargs)

    monkeypatch.setattr(slot_generation, "_lock", lock)
    runs = [Run(lambda: slots_generate(weeks=2, today=today)) for _ in range(2)]
    for run in runs:
        run.start()
    results = [run.outcome() for run in runs]
    monkeypatch.setattr(slot_generation, "_lock", real)

    expected = slots_generate(weeks=2, today=today)  # a third run finds everything in place
    assert (expected.created, expected.updated) == (0, 0)
    assert results[0].created == results[1].created > 0  # both planned them; the database kept one of each
    assert Slot.objects.count() == results[0].created
