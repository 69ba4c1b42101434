"""Real parts for the fault drills (tests/test_fault_drills.py), the broker tests and the benchmarks (bench/), all on
127.0.0.1, each stopped by whoever started it.

- `RedisServer`: a throw-away `redis-server` on a free port, without persistence, that a drill may stop and start
  again on the same port (the machine's shared Redis is never touched); `claim_redis`: a database of the shared
  Redis for a run of its own, refused when it holds anybody else's keys;
- `Processes`: Celery workers and gunicorn (`start_gunicorn`) as subprocesses, each in its own process group so that
  nothing it forked outlives the drill;
- `csrf_token` and `confirm_form`: what a client of the pages reads from them to post a form;
- `SmtpRelay` and `SmsGateway`: the mail relay and the SMS gateway at the protocol level. Each can stall once right
  after it has taken a message, so that a drill can kill the sender between "the relay has it" and "the outbox says
  sent".
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from pathlib import Path
from urllib.parse import quote

import redis
from celery import Celery
from django.conf import settings
from django.db import connection
from kombu import pools

from kelabooking import celery_app

ROOT = Path(__file__).resolve().parents[1]
REDIS_SERVER = shutil.which("redis-server") or ""
# How long a stalled relay or gateway keeps a sender waiting at most; the drills kill the sender long before.
STALL_SECONDS = 15.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition: Callable[[], object], *, what: str, timeout: float = 20.0, log: Started | None = None) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds, saying what never happened (with the end of
    `log`, the process that should have made it happen)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout:.0f} s: {what}" + (f"\n{log.name}:\n{log.log_tail()}" if log else ""))


def subprocess_database_url(*, application_name: str = "") -> str:
    """The PostgreSQL test database as a DATABASE_URL for a subprocess; `application_name` tags its connections."""
    db = connection.settings_dict
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    url = (
        f"postgres://{quote(db['USER'] or 'postgres', safe='')}{password}"
        f"@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    return f"{url}?application_name={application_name}" if application_name else url


# --- Processes ------------------------------------------------------------------------------------------------------


@dataclass
class Started:
    name: str
    process: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """`kill -9`: no shutdown, no acknowledgement, no last word to the database."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, *, timeout: float = 8.0) -> None:
        if self.alive():
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=timeout)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        with contextlib.suppress(ProcessLookupError):  # whatever the group still holds (a gunicorn worker) goes too
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Processes:
    """Subprocesses a drill starts; `stop_all` ends each one (the fixture's teardown)."""

    workdir: Path
    started: list[Started] = field(default_factory=list)

    def start(self, name: str, args: list[str], *, env: dict[str, str]) -> Started:
        log = self.workdir / f"{name}-{len(self.started)}.log"
        with log.open("w") as output:
            process = subprocess.Popen(  # noqa: S603 - our own programs
                args, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        started = Started(name=name, process=process, log=log)
        self.started.append(started)
        return started

    def stop_all(self) -> None:
        for started in reversed(self.started):
            started.stop()


def base_env(**values: str) -> dict[str, str]:
    """The environment of a subprocess of ours: only what it needs, nothing inherited from the test run, and the
    test run's identity code keys, so that both sides read each other's encrypted rows and digests."""
    keys = {
        "IDENTITY_CODE_ENCRYPTION_KEYS": ",".join(settings.IDENTITY_CODE_ENCRYPTION_KEYS),
        "IDENTITY_CODE_HMAC_KEYS": ",".join(settings.IDENTITY_CODE_HMAC_KEYS),
    }
    return {"PATH": os.environ["PATH"], "DEBUG": "1", "LOG_LEVEL": "INFO", **keys, **values}


def celery_worker_args(*, name: str, pool: str = "solo", concurrency: int = 1) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "kelabooking",
        "worker",
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--hostname",
        f"{name}@drill",
        "--loglevel",
        "INFO",
        "--without-heartbeat",
        "--without-mingle",
        "--without-gossip",
    ]


def gunicorn_args(*options: str) -> list[str]:
    """gunicorn as the web container runs it (kelabooking/gunicorn.conf.py), with `options` on top of that file's."""
    config = ["--config", "kelabooking/gunicorn.conf.py"]
    return [sys.executable, "-m", "gunicorn", *config, *options, "kelabooking.wsgi:application"]


def answers_health(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:  # noqa: S310 - our own server
            return response.status == 200
    except OSError:
        return False


def start_gunicorn(processes: Processes, *, env: dict[str, str], options: tuple[str, ...] = ()) -> Started:
    """gunicorn on env's GUNICORN_BIND, once it answers /healthz; fails at once, with its log, when it exits."""
    url = f"http://{env['GUNICORN_BIND']}"
    started = processes.start("gunicorn", gunicorn_args(*options), env=env)
    wait_for(lambda: not started.alive() or answers_health(url), what="gunicorn answers", log=started, timeout=60)
    assert started.alive(), f"gunicorn exited with {started.process.returncode}:\n{started.log_tail()}"
    return started


# --- Pages ----------------------------------------------------------------------------------------------------------

# A form's token, or the one htmx sends (`hx-headers` on <body>).
CSRF_TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"|"X-CSRFToken":\s*"([^"]+)"')
CONFIRM_FIELDS = ("hold", "idempotency_key")


def csrf_token(html: str) -> str | None:
    found = CSRF_TOKEN.search(html)
    return (found.group(1) or found.group(2)) if found else None


def confirm_form(html: str) -> dict[str, str] | None:
    """What the check page's confirm form posts: the hold it shows and its idempotency key (None: no such form)."""
    found = {name: re.search(rf'type="hidden" name="{name}" value="([^"]+)"', html) for name in CONFIRM_FIELDS}
    return {name: match.group(1) for name, match in found.items()} if all(found.values()) else None


# --- The broker -----------------------------------------------------------------------------------------------------


class RedisServer:
    """A `redis-server` of the drill's own, without persistence: stopped, it forgets every queued task."""

    def __init__(self, processes: Processes) -> None:
        self.processes = processes
        self.port = free_port()
        self.current: Started | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--daemonize", "no", "--dir", str(self.processes.workdir)]
        self.current = self.processes.start("redis", args, env={"PATH": os.environ["PATH"]})
        wait_for(self.answers, what=f"redis-server answers on port {self.port}", timeout=10)

    def stop(self) -> None:
        """Terminate the server (SIGTERM); with nothing to save it exits at once."""
        assert self.current is not None
        self.current.stop()
        self.current = None

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def queued(self, queue: str = "celery") -> int:
        """Tasks waiting in the queue (kombu's Redis transport keeps a queue as a list)."""
        return self.client().llen(queue)

    def unacked(self) -> int:
        """Tasks a worker has taken and not acknowledged yet (with acks_late: not finished yet)."""
        return self.client().hlen("unacked")

    def drained(self) -> bool:
        return self.queued() == 0 and self.unacked() == 0


OWNER_KEY = "kelabooking-tests:owner"


def claim_redis(url: str, *, owner: str) -> redis.Redis:
    """The Redis database at `url`, emptied for a run of `owner`'s: one that holds keys no run of ours wrote is
    refused (ValueError), never emptied."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    if client.dbsize() and not client.exists(OWNER_KEY):
        raise ValueError(f"{url} holds keys that are not ours: refusing to use (and empty) it")
    client.flushdb()
    client.set(OWNER_KEY, owner)
    return client


class CeleryBroker:
    """Tasks queued on a real broker instead of run eagerly: a Celery app of its own, configured as the project's
    but for the broker, is this thread's current app (the one the tasks are sent with) until `restore`."""

    def __init__(self, url: str) -> None:
        self.app = Celery(celery_app.main, set_as_current=False)
        self.app.config_from_object("django.conf:settings", namespace="CELERY")
        self.app.conf.update(broker_url=url, task_always_eager=False, broker_connection_retry=False)
        self.app.set_current()

    def restore(self) -> None:
        celery_app.set_current()
        self.app.close()
        pools.reset()  # closes the connections it opened


# --- The mail relay and the SMS gateway -----------------------------------------------------------------------------


class SmtpRelay:
    """A mail relay (aiosmtpd) that keeps every e-mail it accepted, parsed.

    With `stall_first`, the first e-mail is accepted (250 to its DATA) and then the client's QUIT is left unanswered
    until `release()` (or STALL_SECONDS): the relay has taken responsibility for the e-mail, and the sender has not
    yet returned from sending it.
    """

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[email.message.EmailMessage] = []
        self.stall_first = False
        self.stalled = threading.Event()
        self._release = threading.Event()
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 Message accepted for delivery"

    async def handle_QUIT(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        if self.stall_first and self.messages and not self.stalled.is_set():
            self.stalled.set()
            deadline = time.monotonic() + STALL_SECONDS
            while not self._release.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        return "221 Bye"

    def release(self) -> None:
        self._release.set()

    def close(self) -> None:
        self.release()
        self._controller.stop()


class SmsGateway:
    """An SMS gateway speaking kelabooking.sms.HttpGatewayBackend's JSON protocol (threaded werkzeug): it records every
    request and delivers each idempotency key to the phone once, however often it is sent.

    With `stall_first`, the first request is taken and its answer held back until `release()` (or STALL_SECONDS).
    """

    def __init__(self) -> None:
        from werkzeug.serving import make_server

        self.requests: list[dict] = []
        self.delivered: dict[str, dict] = {}
        self.stall_first = False
        self.stalled = threading.Event()
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/sms"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _wsgi(self, environ, start_response):
        from werkzeug import Request, Response

        request = Request(environ)
        payload = request.get_json(silent=True) or {}
        key = request.headers.get("Idempotency-Key", "")
        with self._lock:
            self.requests.append({"key": key, "auth": request.headers.get("Authorization"), **payload})
            self.delivered.setdefault(key, payload)
            stall = self.stall_first and not self.stalled.is_set()
            if stall:
                self.stalled.set()
        if stall:
            self._release.wait(timeout=STALL_SECONDS)
        response = Response(json.dumps({"id": key, "status": "accepted"}), status=202, mimetype="application/json")
        return response(environ, start_response)

    def release(self) -> None:
        self._release.set()

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
