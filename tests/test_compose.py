"""docker-compose.yml and the Dockerfile point at things that exist in this project, and the compose file holds no
secret: it requires them from the environment, and a demo site only when asked for."""

from __future__ import annotations

import re
import secrets
import shlex
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands
from django.utils.module_loading import import_string

from kelabooking import crypto
from tests.kelabooking.test_settings import run_manage

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
# Compose's own interpolation: ${NAME}, ${NAME:-default}, ${NAME:?error} (an unset or empty NAME stops `up`).
VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<operator>:[-?])(?P<rest>[^}]*))?\}")
REQUIRED = [
    "SECRET_KEY",
    "IDENTITY_CODE_ENCRYPTION_KEYS",
    "IDENTITY_CODE_HMAC_KEYS",
    "POSTGRES_PASSWORD",
    "APP_DB_PASSWORD",
    "SMS_GATEWAY_URL",
]
INIT_SCRIPT = ROOT / "deploy" / "compose" / "initdb" / "10-app-role.sh"


class MissingVariableError(Exception):
    pass


def interpolate(service_environment: dict[str, str], environment: dict[str, str]) -> dict[str, str]:
    def value(match: re.Match[str]) -> str:
        if environment.get(match["name"]):
            return environment[match["name"]]
        if match["operator"] == ":?":
            raise MissingVariableError(match["name"])
        return match["rest"] if match["operator"] == ":-" else ""

    return {name: VARIABLE.sub(value, str(text)) for name, text in service_environment.items()}


def app_environment(environment: dict[str, str]) -> dict[str, str]:
    """What web, worker and beat get (they share the x-app environment), given the shell's `environment`."""
    for service in ("web", "worker", "beat"):
        assert COMPOSE["services"][service]["environment"] is COMPOSE["x-app"]["environment"]
    return interpolate(COMPOSE["x-app"]["environment"], environment)


def database_environment(environment: dict[str, str]) -> dict[str, str]:
    return interpolate(COMPOSE["services"]["db"]["environment"], environment)


def migrate_environment(environment: dict[str, str]) -> dict[str, str]:
    return interpolate(COMPOSE["services"]["migrate"]["environment"], environment)


def every_environment(environment: dict[str, str]) -> list[dict[str, str]]:
    return [app_environment(environment), database_environment(environment), migrate_environment(environment)]


def own_secrets() -> dict[str, str]:
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "IDENTITY_CODE_ENCRYPTION_KEYS": crypto.new_encryption_key(),
        "IDENTITY_CODE_HMAC_KEYS": crypto.new_hmac_key(),
        "POSTGRES_PASSWORD": secrets.token_hex(24),
        "APP_DB_PASSWORD": secrets.token_hex(24),
        "SMS_GATEWAY_URL": "https://sms.kelabooking.example/send",
    }


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
    assert set(COMPOSE["services"]) == {"db", "redis", "mailpit", "migrate", "web", "worker", "beat"}
    assert COMPOSE["services"]["db"]["image"].startswith("postgres:16")


def test_compose__app_commands_point_at_existing_things() -> None:
    for service in ["migrate", "web", "worker", "beat"]:
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


@pytest.mark.parametrize("missing", REQUIRED)
def test_compose__a_secret_not_given__stops_naming_it_no_default_in_the_file(missing: str) -> None:
    given = {name: value for name, value in own_secrets().items() if name != missing}
    with pytest.raises(MissingVariableError, match=missing):
        every_environment(given)


def test_compose__only_the_secrets_given__production_settings_without_demo_or_sandbox() -> None:
    given = own_secrets()
    app = app_environment(given)
    assert (app["LOAD_DEMO_DATA"], app["SUOMIFI_SANDBOX"], app["SUOMIFI_SANDBOX_PUBLIC_DEMO"]) == ("0", "0", "0")
    assert app["DEBUG"] == "0"
    assert database_environment(given)["POSTGRES_PASSWORD"] == given["POSTGRES_PASSWORD"]
    assert f"kelabooking_app:{given['APP_DB_PASSWORD']}@db:" in app["DATABASE_URL"]
    # The settings take it, and every start-up check passes (the database ones need the database: not here).
    result = run_manage("manage.py", "check", env=app)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose__public_demo__only_with_its_own_variables() -> None:
    sandbox_only = app_environment({**own_secrets(), "SUOMIFI_SANDBOX": "1"})
    assert (sandbox_only["SUOMIFI_SANDBOX"], sandbox_only["SUOMIFI_SANDBOX_PUBLIC_DEMO"]) == ("1", "0")
    result = run_manage("manage.py", "check", env=sandbox_only)
    assert "SUOMIFI_SANDBOX_PUBLIC_DEMO=1" in result.stderr  # the settings refuse the sandbox without the demo flag
    demo = app_environment(
        {**own_secrets(), "SUOMIFI_SANDBOX": "1", "SUOMIFI_SANDBOX_PUBLIC_DEMO": "1", "LOAD_DEMO_DATA": "1"}
    )
    assert (demo["SUOMIFI_SANDBOX"], demo["SUOMIFI_SANDBOX_PUBLIC_DEMO"], demo["LOAD_DEMO_DATA"]) == ("1", "1", "1")
    assert run_manage("manage.py", "check", env=demo).returncode == 0


def test_compose__web_worker_and_beat_run_as_the_app_role__only_migrate_as_the_owner() -> None:
    """The audit trail is safe from the app's own processes (README, "Database roles"): they connect as the role the
    database's first start creates, and `migrate`, as the owner, grants it its rights before any of them starts."""
    given = own_secrets()
    owner = database_environment(given)
    migrate = migrate_environment(given)
    role = migrate["DATABASE_APP_ROLE"]
    assert migrate["DATABASE_URL"].startswith(f"postgres://{owner['POSTGRES_USER']}:{given['POSTGRES_PASSWORD']}@")
    assert app_environment(given)["DATABASE_URL"].startswith(f"postgres://{role}:{given['APP_DB_PASSWORD']}@")
    assert "DATABASE_APP_ROLE" not in app_environment(given)
    script = INIT_SCRIPT.read_text(encoding="utf-8")
    assert f"CREATE ROLE {role} LOGIN" in script
    assert '--set app_password="$APP_DB_PASSWORD"' in script  # the password from the environment, never the file
    assert "./deploy/compose/initdb:/docker-entrypoint-initdb.d:ro" in COMPOSE["services"]["db"]["volumes"]
    for service in ("web", "worker", "beat"):
        assert COMPOSE["services"][service]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
