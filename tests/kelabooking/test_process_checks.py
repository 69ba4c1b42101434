"""Every process of the production shape refuses what the system checks reject: gunicorn (tests/kelabooking/
test_gunicorn.py), and the Celery worker and beat, which used to start on a secret this repository publishes."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from kelabooking import crypto

ROOT = Path(__file__).resolve().parents[2]
CELERY = Path(sys.executable).parent / "celery"


def _production_env(tmp_path: Path, **changes: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "CELERY_BROKER_URL": "memory://",
        "GUNICORN_WORKERS": "1",
        "EMAIL_HOST": "127.0.0.1",
        "SMS_GATEWAY_URL": "http://127.0.0.1:9/",
        "IDENTITY_CODE_ENCRYPTION_KEYS": crypto.new_encryption_key(),
        "IDENTITY_CODE_HMAC_KEYS": crypto.new_hmac_key(),
        **changes,
    }


def _start(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own Celery app
        [str(CELERY), "-A", "kelabooking", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "command",
    [["worker", "--pool", "solo", "--without-mingle", "--without-gossip"], ["beat", "--schedule", "SCHEDULE"]],
    ids=["worker", "beat"],
)
def test_celery__secret_key_published_in_the_repository__refuses_to_start_naming_the_check(tmp_path, command) -> None:
    command = [str(tmp_path / "schedule") if part == "SCHEDULE" else part for part in command]
    env = _production_env(tmp_path, SECRET_KEY="collectstatic-only")  # the Dockerfile's collectstatic step's

    finished = _start(command, env)

    output = finished.stdout + finished.stderr
    assert finished.returncode != 0, output
    assert "kelabooking.E003" in output
    assert "SECRET_KEY" in output
    assert "cannot start" in output
