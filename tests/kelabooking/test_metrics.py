"""/metrics: only for a scraper with the token; the outbox, booking, sign-in, outside-call and request figures it
reports; and a prefork-style set of processes adding up under PROMETHEUS_MULTIPROC_DIR."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
import time_machine
from django.core.cache import cache
from prometheus_client.parser import text_string_to_metric_families

from bookings.services import BookingError, SlotFullError, booking_confirm, booking_hold
from bookings.services.booking import ContactDetails
from kelabooking import clock
from kelabooking.celery import _periodic_timestamp
from kelabooking.delivery import message_send
from kelabooking.metrics import BEAT_SENT_KEY
from kelabooking.models import Message
from partners import valtuudet
from tests.factories import CustomerFactory, SlotFactory, acting_for, acting_for_hold

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "scrape-token-0123456789abcdef"
PHONE = "+358401234567"


@pytest.fixture
def token(settings) -> str:
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scrape(client, token: str = TOKEN) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an authorised scrape, by name and labels."""
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def book(now: dt.datetime):
    """A partner holds a time and confirms it, through the services: the confirmation is queued in the outbox."""
    slot = SlotFactory()
    acting = acting_for(customer=CustomerFactory())
    with time_machine.travel(now, tick=False):
        hold = booking_hold(acting=acting, slot_id=slot.pk)
        return booking_confirm(
            acting=acting_for_hold(hold),
            hold_id=hold.pk,
            contact=ContactDetails(phone=PHONE, email="liisa@example.org"),
            idempotency_key=uuid.uuid4(),
        )


def test_metrics__without_a_configured_token__is_not_there(client, settings) -> None:
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer wrong-token", f"Basic {TOKEN}", f"{TOKEN}"])
def test_metrics__scrape_without_the_token__refused(client, token, authorization) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert b"kelabooking" not in response.content


def test_metrics__from_the_pods_address_over_http__answered(client, token, settings) -> None:
    """Prometheus scrapes a pod by its address over plain HTTP: neither ALLOWED_HOSTS nor the HTTPS redirect stop it."""
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"}, HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 200


def test_metrics__after_a_booking__report_the_outbox_queue_and_its_oldest_message(client, token) -> None:
    now = clock.now()
    before = scrape(client)
    book(now)
    # The confirmation's send was queued on commit, which the test's transaction never reaches: both wait.
    assert Message.objects.filter(status=Message.Status.PENDING).count() == 2
    with time_machine.travel(now + dt.timedelta(minutes=20), tick=False):
        samples = scrape(client)
    for channel in ("sms", "email"):
        assert value(samples, "kelabooking_outbox_pending_messages", channel=channel) == 1
        age = value(samples, "kelabooking_outbox_oldest_pending_age_seconds", channel=channel)
        assert 20 * 60 - 5 <= age <= 20 * 60 + 5
    assert value(samples, "kelabooking_booking_changes_total", change="held") == (
        value(before, "kelabooking_booking_changes_total", change="held")
    ), "a change is counted when it commits, and the test's transaction never commits"


def test_metrics__outbox_sends__counted_by_channel_and_outcome(client, token) -> None:
    book(clock.now())
    before = scrape(client)
    for message in Message.objects.all():
        assert message_send(message_id=message.pk).sent
    samples = scrape(client)
    for channel in ("sms", "email"):
        sent = "kelabooking_outbox_send_attempts_total"
        assert (
            value(samples, sent, channel=channel, outcome="sent")
            == value(before, sent, channel=channel, outcome="sent") + 1
        )
        assert value(samples, "kelabooking_outbox_pending_messages", channel=channel) == 0
        assert value(samples, "kelabooking_outbox_oldest_pending_age_seconds", channel=channel) == 0


def test_metrics__confirm_and_refusal__counted(client, token, django_capture_on_commit_callbacks) -> None:
    name = "kelabooking_booking_changes_total"
    before = scrape(client)
    with django_capture_on_commit_callbacks(execute=True):
        booking = book(clock.now())
    full = SlotFactory(capacity=1)
    with django_capture_on_commit_callbacks(execute=True):
        booking_hold(acting=acting_for(customer=CustomerFactory()), slot_id=full.pk)
    with pytest.raises(SlotFullError):
        booking_hold(acting=acting_for(customer=CustomerFactory()), slot_id=full.pk)
    with pytest.raises(BookingError):  # the same hold again: it is a booking now
        booking_confirm(
            acting=acting_for_hold(booking),
            hold_id=booking.pk,
            contact=ContactDetails(phone=PHONE),
            idempotency_key=uuid.uuid4(),
        )
    samples = scrape(client)
    assert value(samples, name, change="confirmed") == value(before, name, change="confirmed") + 1
    assert value(samples, name, change="held") == value(before, name, change="held") + 2
    refused = "kelabooking_booking_refusals_total"
    assert (
        value(samples, refused, action="hold", reason="slot_full")
        == value(before, refused, action="hold", reason="slot_full") + 1
    )
    assert (
        value(samples, refused, action="confirm", reason="hold_changed")
        == value(before, refused, action="confirm", reason="hold_changed") + 1
    )


def test_metrics__slot_utilisation__next_7_days_per_service_line(client, token) -> None:
    in_two_days = clock.now().replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=2)
    slot = SlotFactory(capacity=4, starts_at=in_two_days)
    SlotFactory(service_line=slot.service_line, starts_at=in_two_days + dt.timedelta(hours=1), capacity=4)
    SlotFactory(service_line=slot.service_line, starts_at=in_two_days + dt.timedelta(days=6), capacity=50)
    booking_hold(acting=acting_for(customer=CustomerFactory()), slot_id=slot.pk)
    samples = scrape(client)
    line = slot.service_line.name_en
    assert value(samples, "kelabooking_slot_capacity_next_7_days", service_line=line) == 8
    assert value(samples, "kelabooking_slot_places_taken_next_7_days", service_line=line) == 1
    assert value(samples, "kelabooking_slot_utilisation_ratio_next_7_days", service_line=line) == 1 / 8


def test_metrics__requests__latency_and_status_by_view(client, token) -> None:
    before = scrape(client)
    assert client.get("/fi/").status_code == 200
    assert client.get("/fi/no-such-page/").status_code == 404
    samples = scrape(client)
    count = "kelabooking_http_request_duration_seconds_count"
    assert value(samples, count, view="start", method="GET") == value(before, count, view="start", method="GET") + 1
    responses = "kelabooking_http_responses_total"
    assert (
        value(samples, responses, view="start", status="2xx")
        == value(before, responses, view="start", status="2xx") + 1
    )
    assert (
        value(samples, responses, view="unresolved", status="4xx")
        == value(before, responses, view="unresolved", status="4xx") + 1
    )
    assert not any(labels and dict(labels).get("view") == "metrics" for _, labels in samples), "probes are not timed"


def test_metrics__valtuudet_call_failing__latency_and_error_counted(client, token, settings, httpserver) -> None:
    settings.VALTUUDET_BASE_URL = httpserver.url_for("/valtuudet").rstrip("/")
    path = f"/valtuudet/service/ypa/user/register/{settings.VALTUUDET_CLIENT_ID}/010190-999W"
    httpserver.expect_request(path, method="GET").respond_with_data("down", status=503)
    before = scrape(client)
    with pytest.raises(valtuudet.ValtuudetError):
        valtuudet.register_session(identity_code="010190-999W")
    samples = scrape(client)
    errors = "kelabooking_integration_errors_total"
    assert (
        value(samples, errors, service="valtuudet", operation="register")
        == value(before, errors, service="valtuudet", operation="register") + 1
    )
    count = "kelabooking_integration_request_duration_seconds_count"
    assert (
        value(samples, count, service="valtuudet", operation="register")
        == value(before, count, service="valtuudet", operation="register") + 1
    )


def test_metrics__periodic_task_sent_by_beat__its_time_reported(client, token, settings) -> None:
    with time_machine.travel(dt.datetime(2026, 12, 7, 6, 0, tzinfo=dt.UTC), tick=False):
        _periodic_timestamp("sent", {"task": "kelabooking.tasks.sweep_messages_task"})
    assert cache.get(BEAT_SENT_KEY.format("sweep-messages")) is not None
    samples = scrape(client)
    assert (
        value(samples, "kelabooking_beat_last_sent_timestamp_seconds", task="sweep-messages")
        == dt.datetime(2026, 12, 7, 6, 0, tzinfo=dt.UTC).timestamp()
    )
    assert ("kelabooking_beat_last_sent_timestamp_seconds", (("task", "remind-bookings"),)) not in samples


def test_metrics__readiness__reported_as_gauges(client, token) -> None:
    samples = scrape(client)
    for check in ("database", "cache", "migrations"):
        assert value(samples, "kelabooking_readiness_check_ok", check=check) == 1


def test_metrics__several_processes__added_up_under_prometheus_multiproc_dir(tmp_path) -> None:
    """Two processes count in the directory (as gunicorn's workers do); a third's exposition adds them up."""
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "IDENTITY_CODE_KEY_DIR": str(tmp_path),
        "OIDC_RP_KEY_DIR": str(tmp_path),
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "DJANGO_SETTINGS_MODULE": "kelabooking.settings",
    }
    count = (
        "import django; django.setup(); from kelabooking.metrics import OUTBOX_SEND_ATTEMPTS; "
        "OUTBOX_SEND_ATTEMPTS.labels('sms', 'sent').inc(3)"
    )
    show = (
        "import django; django.setup(); from kelabooking.metrics import exposition; "
        "print(exposition(scrape_time=False).decode())"
    )
    for code in (count, count):
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)  # noqa: S603
    shown = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", show], cwd=ROOT, env=env, check=True, timeout=60, capture_output=True, text=True
    ).stdout
    assert 'kelabooking_outbox_send_attempts_total{channel="sms",outcome="sent"} 6.0' in shown


def test_worker_metrics__served_on_their_port_with_the_token_only(settings) -> None:
    from kelabooking.metrics import worker_metrics_serve

    settings.METRICS_TOKEN = TOKEN
    server = worker_metrics_serve(0, address="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        assert requests.get(url, timeout=5).status_code == 401
        assert requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=5).status_code == 401
        answer = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        assert answer.status_code == 200
        assert "kelabooking_outbox_send_attempts_total" in answer.text
        assert requests.get(url.replace("/metrics", "/"), timeout=5).status_code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_worker_metrics__celery_worker_start__makes_and_empties_its_metrics_directory(tmp_path) -> None:
    """A real worker, as the worker container starts it: its PROMETHEUS_MULTIPROC_DIR (a restarted container's emptyDir
    with an earlier run's counts) is emptied before its pool counts, and it serves /metrics on METRICS_PORT."""
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "IDENTITY_CODE_KEY_DIR": str(tmp_path),
        "OIDC_RP_KEY_DIR": str(tmp_path),
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "DJANGO_SETTINGS_MODULE": "kelabooking.settings",
    }
    earlier = (
        "import django; django.setup(); from kelabooking.metrics import OUTBOX_SEND_ATTEMPTS; "
        "OUTBOX_SEND_ATTEMPTS.labels('sms', 'sent').inc(7)"
    )
    subprocess.run([sys.executable, "-c", earlier], cwd=ROOT, env=env, check=True, timeout=60)  # noqa: S603
    [stale] = directory.glob("counter_*.db")
    port = _free_port()
    worker_env = {**env, "CELERY_BROKER_URL": "memory://localhost/", "METRICS_PORT": str(port), "METRICS_TOKEN": TOKEN}
    args = ["worker", "--pool", "prefork", "--concurrency", "1", "--loglevel", "INFO", "--hostname", "metrics@test"]
    args += ["--without-heartbeat", "--without-mingle", "--without-gossip"]
    worker = subprocess.Popen(  # noqa: S603 - our own program
        [sys.executable, "-m", "celery", "-A", "kelabooking", *args],
        cwd=ROOT,
        env=worker_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = requests.get(
                    f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
                )
                break
            except requests.ConnectionError:
                assert worker.poll() is None, "the worker stopped"
                assert time.monotonic() < deadline, "the worker did not serve its metrics"
                time.sleep(0.3)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        finally:
            with contextlib.suppress(ProcessLookupError):  # the pool's child too, whatever happened
                os.killpg(worker.pid, signal.SIGKILL)
    assert answer.status_code == 200
    assert not stale.exists()
    assert 'kelabooking_outbox_send_attempts_total{channel="sms",outcome="sent"}' not in answer.text


def test_metrics__with_a_metrics_port__answered_on_that_port_alone_which_answers_nothing_else(
    client, token, settings
) -> None:
    """With METRICS_PORT, gunicorn listens there too (tests/kelabooking/test_gunicorn.py): the monitoring network
    reaches that port only, and the pages' port, whose X-Forwarded-For the app trusts, the ingress only."""
    settings.METRICS_PORT = 9808
    authorised = {"Authorization": f"Bearer {token}"}
    assert client.get("/metrics", headers=authorised, SERVER_PORT="9808").status_code == 200
    assert client.get("/metrics", headers=authorised, SERVER_PORT="8000").status_code == 404
    for path in ("/healthz", "/readyz", "/en/", "/admin/login/", "/oidc/callback/"):
        assert client.get(path, SERVER_PORT="9808").status_code == 404, path
    assert client.get("/healthz", SERVER_PORT="8000").status_code == 200
    settings.METRICS_PORT = 0
    assert client.get("/metrics", headers=authorised, SERVER_PORT="8000").status_code == 200
