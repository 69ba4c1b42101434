"""The outbox against a real broker: a broker outage delays a message but never fails the change or loses it.

The worker is a real `celery worker` process reading the same PostgreSQL test database, so these tests need
PostgreSQL and Redis (CI has both).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.db import connection, transaction
from kombu import pools

from kelabooking import celery_app
from kelabooking.models import Message
from kelabooking.services import messages_sweep
from tests.kelabooking.test_outbox import enqueue

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
def broker(redis_url: str) -> Iterator[callable]:
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


@pytest.fixture
def worker(broker, smtp_sink) -> Iterator[subprocess.Popen]:
    broker_url = broker(True)
    env = {
        "PATH": os.environ["PATH"],
        "DEBUG": "1",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": broker_url,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_sink.port),
        "DB_CONN_MAX_AGE": "0",
    }
    process = subprocess.Popen(  # noqa: S603 - our own worker
        [sys.executable, "-m", "celery", "-A", "kelabooking", "worker", "--pool", "solo", "--loglevel", "INFO"]
        + ["--without-heartbeat", "--without-mingle", "--without-gossip"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


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


@pytest.mark.redis
def test_message__nudge_after_commit__publishes_one_task_to_redis(broker) -> None:
    broker_url = broker(True)
    with transaction.atomic():
        message = enqueue()
        assert redis.Redis.from_url(broker_url).llen("celery") == 0  # not before commit
    queued = [json.loads(raw) for raw in redis.Redis.from_url(broker_url).lrange("celery", 0, -1)]
    assert [(task["headers"]["task"], task["headers"]["argsrepr"]) for task in queued] == [
        ("kelabooking.tasks.send_message_task", f"({message.pk},)")
    ]


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
    assert wait_for(lambda: Message.objects.get(pk=message.pk).status == Message.Status.SENT), worker.stdout
    assert wait_for(lambda: len(smtp_sink.messages) == 1)

    assert messages_sweep() == []  # sent: nothing left to sweep
    time.sleep(1.0)
    assert [received["X-Envelope-To"] for received in smtp_sink.messages] == ["asiakas@example.org"]
