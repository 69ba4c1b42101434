"""The masks in every process the app runs as: a real Celery worker (prefork, as compose runs it) and beat, which
replace the root logger's handlers with their own and send `print` to a logger, show no identity code, phone number
or e-mail address; with LOG_FORMAT=json their lines are JSON, and a task's lines name the request that queued it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = "tests.kelabooking.celery_log_probe"  # the Celery app module the processes run; it logs these values
IDENTITY_CODE = "150385-9013"
PHONE = "+358401234567"
EMAIL = "liisa.tavallinen@example.org"
DONE = "log probe done"
REQUEST_ID = "probe-request-0042"


def _run_until_done(args: list[str], tmp_path: Path, **extra_env: str) -> str:
    """Run a Celery command of the probe app until it logs that it is done (at most 20 s); return its output."""
    log = tmp_path / "celery.log"
    env = {
        "PATH": os.environ["PATH"],
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "IDENTITY_CODE_KEY_DIR": str(tmp_path),
        "OIDC_RP_KEY_DIR": str(tmp_path),
        # An in-memory broker inside the worker: the task the worker sends itself runs in the same process.
        "CELERY_BROKER_URL": "memory://localhost/",
        **extra_env,
    }
    with log.open("w") as output:
        process = subprocess.Popen(  # noqa: S603 - our own program
            [sys.executable, "-m", "celery", "-A", PROBE, *args],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 20
        while DONE not in log.read_text() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        finally:
            with contextlib.suppress(ProcessLookupError):  # the pool's child too, whatever happened
                os.killpg(process.pid, signal.SIGKILL)
    text = log.read_text()
    assert DONE in text, text
    return text


def _assert_masked(output: str, *, where: str) -> None:
    assert IDENTITY_CODE not in output
    assert PHONE not in output
    assert EMAIL not in output
    assert f"{where}: a plain logger names [identity code], [phone number] and [e-mail address]" in output
    assert f"{where}: print names [identity code], [phone number] and [e-mail address]" in output


def test_celery_worker__logs_and_prints_personal_data__masked(tmp_path) -> None:
    args = ["worker", "--pool", "prefork", "--concurrency", "1", "--loglevel", "INFO", "--hostname", "probe@test"]
    output = _run_until_done([*args, "--without-heartbeat", "--without-mingle", "--without-gossip"], tmp_path)
    _assert_masked(output, where="worker")
    _assert_masked(output, where="task")
    assert "task logger names [identity code], [phone number] and [e-mail address]" in output
    assert "ValueError: bad customer [identity code]" in output


def test_celery_beat__logs_and_prints_personal_data__masked(tmp_path) -> None:
    output = _run_until_done(["beat", "--loglevel", "INFO", "--schedule", str(tmp_path / "beat-schedule")], tmp_path)
    _assert_masked(output, where="beat")


def _json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_celery_worker__json_format__masked_lines_naming_the_request_that_queued_the_task(tmp_path) -> None:
    args = ["worker", "--pool", "prefork", "--concurrency", "1", "--loglevel", "INFO", "--hostname", "probe@test"]
    args += ["--without-heartbeat", "--without-mingle", "--without-gossip"]
    output = _run_until_done(args, tmp_path, LOG_FORMAT="json")
    assert IDENTITY_CODE not in output
    lines = _json_lines(output)
    messages = {line["message"]: line for line in lines}
    # Celery's own lines and `print` (sent to a logger) are JSON too.
    assert any(message.endswith("ready.") for message in messages), output
    worker = messages["worker: print names [identity code], [phone number] and [e-mail address]"]
    assert worker["request_id"] == ""
    task_lines = [line for line in lines if line.get("task") == "tests.log_probe_task"]
    assert {line["message"] for line in task_lines} >= {
        "task: a plain logger names [identity code], [phone number] and [e-mail address]",
        "task logger names [identity code], [phone number] and [e-mail address]",
        "task failed",
        DONE,
    }
    assert {line["request_id"] for line in task_lines} == {REQUEST_ID}
    [failed] = [line for line in task_lines if line["message"] == "task failed"]
    assert "ValueError: bad customer [identity code]" in failed["exception"]
    assert all(line["time"].endswith("+00:00") and line["level"] and line["logger"] for line in lines)


def test_celery_beat__json_format__masked(tmp_path) -> None:
    args = ["beat", "--loglevel", "INFO", "--schedule", str(tmp_path / "beat-schedule")]
    output = _run_until_done(args, tmp_path, LOG_FORMAT="json")
    assert IDENTITY_CODE not in output
    messages = {line["message"] for line in _json_lines(output)}
    assert "beat: a plain logger names [identity code], [phone number] and [e-mail address]" in messages
    assert "beat: print names [identity code], [phone number] and [e-mail address]" in messages
    assert any(message.startswith("beat: Starting") for message in messages), output
