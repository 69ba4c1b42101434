"""/healthz (the process answers, touching nothing) and /readyz (database, cache, migrations), as an orchestrator asks
them: by the pod's address, over plain HTTP, every few seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kelabooking import probes
from tests.conftest import IN_CI
from tests.drills import claim_redis

ROOT = Path(__file__).resolve().parents[2]


def test_healthz__answers_without_touching_the_database(client) -> None:
    """No django_db mark: a query, or a session or user loaded, would fail this test."""
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok"


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
@pytest.mark.django_db
def test_probes__by_the_pods_address_over_http__answered_without_a_session(client, settings, path) -> None:
    settings.SECURE_SSL_REDIRECT = True
    response = client.get(path, HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 200
    assert not response.cookies
    assert client.get("/fi/", HTTP_HOST="localhost").status_code == 301  # the pages are still redirected


@pytest.mark.django_db
def test_readyz__database_cache_and_migrations_fine__ready(client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "checks": {"database": "ok", "cache": "ok", "migrations": "ok"}}


@pytest.mark.redis
@pytest.mark.django_db
def test_readyz__with_redis_as_the_cache__ready_and_leaves_no_key(client, settings, redis_url) -> None:
    try:
        redis = claim_redis(redis_url, owner="tests/kelabooking/test_probes.py")
    except ValueError as error:  # the rule of the marked tests (tests/conftest.py): skip locally, fail in CI
        (pytest.fail if IN_CI else pytest.skip)(f"{error}: set REDIS_URL to a free database")
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}}
    try:
        response = client.get("/readyz")
        assert response.status_code == 200, response.content
        assert response.json()["checks"]["cache"] == "ok"
        assert redis.keys("*readyz*") == []
    finally:
        redis.flushdb()


@pytest.mark.django_db
def test_readyz__cache_unreachable__not_ready_saying_so(client, settings) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:9/0"}
    }
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"ready": False, "checks": {"database": "ok", "cache": "failed", "migrations": "ok"}}
    assert b"127.0.0.1" not in response.content  # which check failed, not how it is configured


READYZ = (
    "import json, django; django.setup(); from django.test import Client; "
    "response = Client().get('/readyz'); print(json.dumps([response.status_code, response.json()]))"
)


def _readyz_in_a_process(database_url: str, tmp_path: Path) -> tuple[int, dict]:
    """/readyz asked of a process of its own, configured with `database_url` (the tests' settings otherwise)."""
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url,
        "OIDC_RP_KEY_DIR": str(tmp_path),
    }
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", READYZ], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    status, body = json.loads(done.stdout.strip().splitlines()[-1])
    return status, body


def test_readyz__database_unreachable__not_ready_saying_so(tmp_path) -> None:
    """PostgreSQL on a port where nothing listens: the probe answers at once, and says which check failed."""
    status, body = _readyz_in_a_process("postgres://kelabooking:secret@127.0.0.1:9/kelabooking", tmp_path)
    assert status == 503
    assert body == {"ready": False, "checks": {"database": "failed", "cache": "ok", "migrations": "unknown"}}
    assert "secret" not in json.dumps(body)


def test_readyz__migrations_not_applied__not_ready_saying_so(tmp_path) -> None:
    status, body = _readyz_in_a_process(f"sqlite:///{tmp_path / 'empty.sqlite3'}", tmp_path)
    assert status == 503
    assert body == {"ready": False, "checks": {"database": "ok", "cache": "ok", "migrations": "failed"}}


@pytest.mark.django_db
def test_readyz__migrations_applied__asked_once_per_process(monkeypatch) -> None:
    monkeypatch.setattr(probes, "_migrations_applied", False)
    probes.migrations_applied()
    monkeypatch.setattr(probes, "MigrationExecutor", None)  # asking again would fail
    probes.migrations_applied()
