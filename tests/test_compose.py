"""docker-compose.yml and the Dockerfile point at things that exist in this project."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml
from django.core.management import get_commands
from django.utils.module_loading import import_string

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def _commands(service: str) -> list[list[str]]:
    """The command lines a service runs, with `sh -c` scripts split on && and `if … then … fi`."""
    command = COMPOSE["services"][service]["command"]
    if command[:2] == ["sh", "-c"]:
        script = re.sub(r"if \[.*?\]; then (.*?); fi", r"\1", command[2])
        return [shlex.split(part.replace("$$", "$").removeprefix(" exec ").strip()) for part in script.split("&&")]
    return [command]


def _check_command(argv: list[str]) -> None:
    if argv[0] == "exec":
        argv = argv[1:]
    if argv[:2] == ["python", "manage.py"]:
        assert argv[2] in get_commands(), f"no management command {argv[2]}"
    elif argv[0] == "gunicorn":
        import_string(argv[1].replace(":", "."))
        config = argv[argv.index("--config") + 1]
        assert (ROOT / config).is_file(), config
    elif argv[0] == "celery":
        app = import_string(argv[argv.index("-A") + 1] + ".celery_app")
        assert argv[argv.index("-A") + 2] in {"worker", "beat"}
        app.loader.import_default_modules()
        assert "kelabooking.tasks.send_messages_task" in app.tasks
    else:
        raise AssertionError(f"unexpected command {argv}")


def test_compose__has_the_production_services() -> None:
    assert set(COMPOSE["services"]) == {"db", "redis", "mailpit", "web", "worker", "beat"}
    assert COMPOSE["services"]["db"]["image"].startswith("postgres:16")


def test_compose__app_commands_point_at_existing_things() -> None:
    for service in ["web", "worker", "beat"]:
        for argv in _commands(service):
            _check_command(argv)


def test_compose__beat_schedule_tasks_exist() -> None:
    from django.conf import settings

    from kelabooking import celery_app

    celery_app.loader.import_default_modules()
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert entry["task"] in celery_app.tasks, entry["task"]


def test_dockerfile__copies_and_runs_what_exists() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    for source in re.findall(r"^COPY (\S+) ", dockerfile, re.M):
        assert (ROOT / source).exists(), source
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1)
    _check_command(yaml.safe_load(cmd))
