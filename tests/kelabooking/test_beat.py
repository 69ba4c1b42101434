"""Beat's heartbeat (kelabooking/beat.py): the file its health checks read is touched by the running beat, and the
check itself passes on a fresh heartbeat and fails on a stale or missing one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from django.conf import settings

from tests.drills import Processes, wait_for

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SCHEDULE = "/tmp/celerybeat-schedule"  # noqa: S108 - the containers' own /tmp (a tmpfs or an emptyDir)


def beat_check() -> str:
    """The Python code of compose's beat health check (Kubernetes' liveness probe runs the same, tests/deploy)."""
    test = COMPOSE["services"]["beat"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    return test[3]


def run_check(code: str, schedule: Path) -> int:
    code = code.replace(SCHEDULE, str(schedule))
    return subprocess.run([sys.executable, "-c", code], check=False, timeout=30).returncode  # noqa: S603


def test_beat__compose_runs_it_with_the_schedule_file_the_check_reads() -> None:
    command = COMPOSE["services"]["beat"]["command"]
    assert command[command.index("--schedule") + 1] == SCHEDULE
    assert f"'{SCHEDULE}.heartbeat'" in beat_check()
    assert settings.CELERY_BEAT_SCHEDULER == "kelabooking.beat:HeartbeatScheduler"


def test_beat__running__touches_its_heartbeat__the_check_passes_then_fails_when_it_is_stale(tmp_path) -> None:
    schedule = tmp_path / "celerybeat-schedule"
    heartbeat = Path(f"{schedule}.heartbeat")
    assert run_check(beat_check(), schedule) != 0  # no heartbeat yet
    env = {"PATH": os.environ["PATH"], "DEBUG": "1", "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    processes = Processes(tmp_path)
    try:
        beat = processes.start(
            "beat",
            [sys.executable, "-m", "celery", "-A", "kelabooking", "beat", "--schedule", str(schedule), "-l", "INFO"],
            env=env,
        )
        wait_for(heartbeat.exists, what="beat's heartbeat file", timeout=30, log=beat)
        assert time.time() - heartbeat.stat().st_mtime < 30
        assert run_check(beat_check(), schedule) == 0
    finally:
        processes.stop_all()
    stale = time.time() - 6 * 60
    os.utime(heartbeat, (stale, stale))
    assert run_check(beat_check(), schedule) != 0
