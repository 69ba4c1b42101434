"""gunicorn as the web container runs it: the access log masks identity codes, phone numbers and e-mail addresses,
and the start refuses what the system checks refuse, those that read the database included."""

from __future__ import annotations

import json
import os
import re
import runpy
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kelabooking import crypto

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = [
    sys.executable,
    "-m",
    "gunicorn",
    "kelabooking.wsgi:application",
    "--config",
    "kelabooking/gunicorn.conf.py",
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(tmp_path, *paths: str, status: int = 404, method: str = "GET", **extra_env: str) -> str:
    """Start gunicorn as the web container does, request each path (each answers `status`), stop it; return its
    output."""
    port = _free_port()
    env = {
        "PATH": os.environ["PATH"],
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        **extra_env,
    }
    server = subprocess.Popen(  # noqa: S603 - our own server
        GUNICORN,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    statuses = []
    try:
        deadline = time.monotonic() + 30
        for path in paths:
            answered = None
            while answered is None:
                try:
                    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
                    with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310
                        assert method != "HEAD" or response.read() == b""
                        answered = response.status
                except urllib.error.HTTPError as error:
                    answered = error.code
                except OSError:
                    assert time.monotonic() < deadline, "gunicorn did not start"
                    time.sleep(0.3)
            statuses.append(answered)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=20)
    assert statuses == [status] * len(paths), output
    return output


def test_gunicorn__access_log__masks_identity_codes_in_paths(tmp_path) -> None:
    output = _serve(tmp_path, "/fi/no-such-page/010594Y9021/")
    assert "/fi/no-such-page/[identity code]/" in output
    assert "010594Y9021" not in output


def test_gunicorn__access_log__masks_phone_numbers_and_email_addresses_in_query_strings(tmp_path) -> None:
    output = _serve(
        tmp_path,
        "/fi/no-such-page/?q=%2B358401234567&o=1",
        "/fi/no-such-page/?q=040+765+4321",
        "/fi/no-such-page/?q=liisa.tavallinen%40example.org",
        "/fi/no-such-page/?q=sanni@example.org",
    )
    assert "/fi/no-such-page/?q=[phone number]&o=1" in output
    assert output.count("?q=[phone number]") == 2
    assert output.count("?q=[e-mail address]") == 2
    for shown in ("358401234567", "liisa", "sanni", "example.org"):
        assert shown not in output
    # Short pieces only where the request is shown: a duration, a timestamp or a pid may hold them by chance.
    request_lines = re.findall(r'"GET (.*?) HTTP/1\.1"', output)
    assert len(request_lines) == 4, output
    for request_line in request_lines:
        assert "765" not in request_line
        assert "4321" not in request_line


def test_gunicorn__a_home_it_cannot_write__starts_and_stops_without_a_control_socket_error(tmp_path) -> None:
    """A container's user has a home it cannot write (read-only, or another user's): gunicorn 25.1+ would open its
    control socket there at every start and log "Control server error"; ours opens none."""
    home = tmp_path / "home-is-a-file"  # not a directory: unwritable even for root, who runs the tests in CI
    home.write_text("")
    output = _serve(tmp_path, "/healthz", status=200, HOME=str(home), XDG_RUNTIME_DIR="")
    assert "Booting worker" in output
    assert "Control server" not in output
    assert "Handling signal: term" in output
    assert "Shutting down: Master" in output


def test_gunicorn__head__answered_without_a_body_and_without_a_warning(tmp_path) -> None:
    """Uptime checkers ask with HEAD: 200 as for GET, and gunicorn has no body of ours to drop (it logs a warning for
    each one it drops)."""
    output = _serve(tmp_path, "/healthz", "/admin/login/", status=200, method="HEAD")
    assert output.count('"HEAD /admin/login/') == 1
    assert '"HEAD /healthz' not in output  # a probe that succeeds writes no access line (kelabooking.logging)
    assert "body bytes on a no-body response" not in output
    assert "WARNING" not in output


def test_gunicorn__several_workers_without_a_shared_cache__refuses_to_start(tmp_path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "DEBUG": "0",
        "SECRET_KEY": "gunicorn-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "GUNICORN_BIND": f"127.0.0.1:{_free_port()}",
        "GUNICORN_WORKERS": "2",
    }
    finished = subprocess.run(  # noqa: S603 - our own server
        GUNICORN,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode != 0
    assert "kelabooking.E001" in finished.stdout + finished.stderr


def test_gunicorn__identity_codes_stored_under_a_key_not_configured__refuses_to_start_naming_it(tmp_path) -> None:
    stored_with = {
        "IDENTITY_CODE_ENCRYPTION_KEYS": crypto.new_encryption_key(),
        "IDENTITY_CODE_HMAC_KEYS": crypto.new_hmac_key(),
    }
    env = {
        "PATH": os.environ["PATH"],
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "GUNICORN_BIND": f"127.0.0.1:{_free_port()}",
        "GUNICORN_WORKERS": "1",
        "EMAIL_HOST": "127.0.0.1",
        "SMS_GATEWAY_URL": "http://127.0.0.1:9/",
        **stored_with,
    }
    store = "from bookings.models import Customer; Customer.objects.create(identity_code='131052-308T')"
    for command in (["manage.py", "migrate", "--noinput"], ["manage.py", "shell", "-c", store]):
        done = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
    # The encryption key is dropped (the HMAC key too): a process with these keys could neither read nor find her.
    env |= {
        "IDENTITY_CODE_ENCRYPTION_KEYS": crypto.new_encryption_key(),
        "IDENTITY_CODE_HMAC_KEYS": crypto.new_hmac_key(),
    }
    finished = subprocess.run(GUNICORN, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
    output = finished.stdout + finished.stderr
    assert finished.returncode != 0
    assert "kelabooking.E005" in output
    for setting, column in [
        ("IDENTITY_CODE_ENCRYPTION_KEYS", "bookings_customer.identity_code "),
        ("IDENTITY_CODE_HMAC_KEYS", "bookings_customer.identity_code_digest "),
    ]:
        assert f"{column}were stored with key {crypto.key_id(stored_with[setting])}, which {setting}" in output


def test_gunicorn__json_access_log__probes_quiet_and_metrics_added_up_from_the_workers_files(tmp_path) -> None:
    """As production runs it (LOG_FORMAT=json, PROMETHEUS_MULTIPROC_DIR): a probe that succeeds writes no access line,
    one that fails does; every line is JSON, the access line with the request's id; /metrics reads the workers'
    files."""
    port = _free_port()
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "DEBUG": "1",
        "LOG_FORMAT": "json",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",  # never migrated: /readyz fails
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "METRICS_TOKEN": "gunicorn-test-token",
        "IDENTITY_CODE_KEY_DIR": str(tmp_path),
        "OIDC_RP_KEY_DIR": str(tmp_path),
    }
    server = subprocess.Popen(  # noqa: S603 - our own server
        GUNICORN, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )

    def get(path: str, **headers: str) -> tuple[int, str, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - our own server
                return response.status, response.read().decode(), response.headers.get("X-Request-ID", "")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(), error.headers.get("X-Request-ID", "")

    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert get("/healthz")[0] == 200
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.3)
        assert get("/readyz")[0] == 503
        status, _, request_id = get("/fi/no-such-page/")
        assert status == 404
        for _ in range(4):  # whichever worker answers
            get("/fi/no-such-page/")
        status, scraped, _ = get("/metrics", Authorization="Bearer gunicorn-test-token")
        assert status == 200
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=20)
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    access = [line for line in lines if line["logger"] == "gunicorn.access"]
    assert not [line for line in access if "/healthz" in line["message"] or "/metrics" in line["message"]]
    assert [line for line in access if "/readyz" in line["message"]], output
    [not_found] = [
        line for line in access if "/fi/no-such-page/" in line["message"] and line["request_id"] == request_id
    ]
    assert not_found["level"] == "INFO"
    assert 'kelabooking_http_responses_total{status="4xx",view="unresolved"} 5.0' in scraped


def _count_in(directory: Path, code: str) -> None:
    """An earlier run's process, counting in `directory` (as a worker of a container that restarted did)."""
    env = {
        "PATH": os.environ["PATH"],
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{directory.parent / 'db.sqlite3'}",
        "IDENTITY_CODE_KEY_DIR": str(directory.parent),
        "OIDC_RP_KEY_DIR": str(directory.parent),
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "DJANGO_SETTINGS_MODULE": "kelabooking.settings",
    }
    program = f"import django; django.setup(); {code}"
    subprocess.run([sys.executable, "-c", program], cwd=ROOT, env=env, check=True, timeout=60)  # noqa: S603


@pytest.mark.parametrize("found", ["no_directory", "an_earlier_runs_files"])
def test_gunicorn__metrics_directory__made_and_emptied_at_start__this_runs_counts_only(tmp_path, found: str) -> None:
    """PROMETHEUS_MULTIPROC_DIR as a container leaves it: not there yet (a fresh tmpfs; every request would fail on its
    first count), or holding an earlier run's files (a restarted container's emptyDir, whose pids the new workers may
    take again). gunicorn's start makes it and empties it: the requests answer, and /metrics counts this run only."""
    metrics_dir = tmp_path / "tmpfs" / "prometheus"
    if found == "an_earlier_runs_files":
        metrics_dir.mkdir(parents=True)
        _count_in(
            metrics_dir, "from kelabooking.metrics import RESPONSES; RESPONSES.labels('unresolved', '4xx').inc(1000)"
        )
        assert list(metrics_dir.glob("counter_*.db"))
    port = _free_port()
    env = {
        "PATH": os.environ["PATH"],
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "METRICS_TOKEN": "gunicorn-test-token",
        "IDENTITY_CODE_KEY_DIR": str(tmp_path),
        "OIDC_RP_KEY_DIR": str(tmp_path),
    }
    server = subprocess.Popen(  # noqa: S603 - our own server
        GUNICORN, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )

    def get(path: str, **headers: str) -> tuple[int, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - our own server
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert get("/healthz")[0] == 200
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.3)
        statuses = [get("/fi/no-such-page/")[0] for _ in range(3)]
        status, scraped = get("/metrics", Authorization="Bearer gunicorn-test-token")
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=20)
    assert statuses == [404, 404, 404], output
    assert status == 200, output
    assert 'kelabooking_http_responses_total{status="4xx",view="unresolved"} 3.0' in scraped, scraped


def test_gunicorn__metrics_port__metrics_there_alone_and_not_on_the_pages_port(tmp_path) -> None:
    """With METRICS_PORT, gunicorn listens there too: /metrics (with the token) is answered on that port only, and it
    answers nothing else, so that a network policy can let Prometheus reach it and nothing else (docs/operations.md)."""
    pages, metrics = _free_port(), _free_port()
    env = {
        "PATH": os.environ["PATH"],
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "GUNICORN_BIND": f"127.0.0.1:{pages}",
        "GUNICORN_WORKERS": "1",
        "METRICS_PORT": str(metrics),
        "METRICS_TOKEN": "metrics-port-token-0123456789",
    }
    server = subprocess.Popen(GUNICORN, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # noqa: S603

    def status(port: int, path: str) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {env['METRICS_TOKEN']}"}
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 - our own server
                    body = response.read()
                    assert path != "/metrics" or b"kelabooking_http_request" in body
                    return response.status
            except urllib.error.HTTPError as error:
                return error.code
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.3)

    try:
        answers = {
            (port, path): status(port, path)
            for port in (pages, metrics)
            for path in ("/healthz", "/metrics", "/admin/login/")
        }
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=20)
    assert answers == {
        (pages, "/healthz"): 200,
        (pages, "/metrics"): 404,
        (pages, "/admin/login/"): 200,
        (metrics, "/healthz"): 404,
        (metrics, "/metrics"): 200,
        (metrics, "/admin/login/"): 404,
    }, output


@pytest.mark.parametrize(
    ("pages", "metrics"),
    [("0.0.0.0:8000", "0.0.0.0:9808"), ("localhost", "localhost:9808"), ("[::1]:8000", "[::1]:9808")],
)
def test_gunicorn__metrics_port__listens_on_the_pages_host(pages, metrics) -> None:
    config = runpy.run_path(str(ROOT / "kelabooking" / "gunicorn.conf.py"))
    assert config["_metrics_bind"](pages, 9808) == metrics


@pytest.mark.parametrize("pages", ["unix:/tmp/kelabooking.sock", "fd://3", "0.0.0.0:9808"])
def test_gunicorn__metrics_port__beside_no_tcp_address_or_the_same_port__refused(pages) -> None:
    """On a unix socket gunicorn takes a request's port from its Host header: the two ports could not be kept apart."""
    config = runpy.run_path(str(ROOT / "kelabooking" / "gunicorn.conf.py"))
    with pytest.raises(RuntimeError, match="METRICS_PORT=9808 needs GUNICORN_BIND"):
        config["_metrics_bind"](pages, 9808)
