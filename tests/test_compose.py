"""docker-compose.yml and the Dockerfile point at things that exist in this project, and the compose file holds no
secret: it requires them from the environment, and a demo site only when asked for."""

from __future__ import annotations

import fnmatch
import os
import re
import runpy
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands
from django.utils.module_loading import import_string

from kelabooking import crypto
from tests.kelabooking.test_settings import run_manage, settings_in_fresh_process

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
# Compose's own interpolation: ${NAME}, ${NAME:-default}, ${NAME:?error} (an unset or empty NAME stops `up`).
VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<operator>:[-?])(?P<rest>[^}]*))?\}")
REQUIRED = [
    "SECRET_KEY",
    "IDENTITY_CODE_ENCRYPTION_KEYS",
    "IDENTITY_CODE_HMAC_KEYS",
    "POSTGRES_PASSWORD",
    "OWNER_DB_PASSWORD",
    "APP_DB_PASSWORD",
    "SMS_GATEWAY_URL",
]
INIT_SCRIPT = ROOT / "deploy" / "compose" / "initdb" / "10-roles.sh"
DEMO = yaml.safe_load((ROOT / "deploy" / "compose" / "demo.yml").read_text(encoding="utf-8"))
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|_KEYS?$|API_KEY")
APP_SERVICES = ["migrate", "web", "worker", "beat"]
LONG_RUNNING = ["db", "redis", "mailpit", "web", "worker", "beat"]


class MissingVariableError(Exception):
    pass


def interpolate(service_environment: dict[str, str | None], environment: dict[str, str]) -> dict[str, str]:
    """What a container gets: each value interpolated; a name without a value is passed on from the shell (or `.env`)
    when set there, and left out when not."""

    def value(match: re.Match[str]) -> str:
        if environment.get(match["name"]):
            return environment[match["name"]]
        if match["operator"] == ":?":
            raise MissingVariableError(match["name"])
        return match["rest"] if match["operator"] == ":-" else ""

    passed = {
        name: environment[name] for name, text in service_environment.items() if text is None and name in environment
    }
    given = {name: VARIABLE.sub(value, str(text)) for name, text in service_environment.items() if text is not None}
    return {**given, **passed}


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
        "OWNER_DB_PASSWORD": secrets.token_hex(24),
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
    assert database_environment(given)["OWNER_DB_PASSWORD"] == given["OWNER_DB_PASSWORD"]
    assert f"kelabooking_app:{given['APP_DB_PASSWORD']}@db:" in app["DATABASE_URL"]
    # The settings take it, and every start-up check passes (the database ones need the database: not here).
    result = run_manage("manage.py", "check", env=app)
    assert result.returncode == 0, result.stdout + result.stderr


def demo_environment(service: str, environment: dict[str, str]) -> dict[str, str]:
    """What `service` gets with deploy/compose/demo.yml on top (compose merges `environment` key by key)."""
    base = COMPOSE["services"][service]["environment"]
    return interpolate({**base, **DEMO["services"][service]["environment"]}, environment)


def test_compose__demo_variables_in_the_shell__no_demo_without_the_demo_file() -> None:
    """A stray SUOMIFI_SANDBOX=1 or LOAD_DEMO_DATA=1 in the shell or a .env file turns nothing on."""
    shell = {**own_secrets(), "SUOMIFI_SANDBOX": "1", "SUOMIFI_SANDBOX_PUBLIC_DEMO": "1", "LOAD_DEMO_DATA": "1"}
    for environment in (app_environment(shell), migrate_environment(shell)):
        assert (environment["SUOMIFI_SANDBOX"], environment["SUOMIFI_SANDBOX_PUBLIC_DEMO"]) == ("0", "0")
        assert environment["LOAD_DEMO_DATA"] == "0"
    assert COMPOSE["x-app"]["build"]["args"]["REQUIREMENTS"] == "requirements/base.txt"


def test_compose__demo_file__sandbox_demo_data_and_sandbox_image_for_every_app_service() -> None:
    assert set(DEMO["services"]) == {"migrate", "web", "worker", "beat"}
    for service in DEMO["services"]:
        demo = demo_environment(service, own_secrets())
        assert (demo["SUOMIFI_SANDBOX"], demo["SUOMIFI_SANDBOX_PUBLIC_DEMO"], demo["LOAD_DEMO_DATA"]) == ("1", "1", "1")
        assert DEMO["services"][service]["build"]["args"]["REQUIREMENTS"] == "requirements/sandbox.txt"
        assert DEMO["services"][service]["image"] != COMPOSE["services"][service]["image"]  # never tagged as prod
        assert "demo-keys:/app/var" in DEMO["services"][service]["volumes"]
    # The demo admin's password: the shell's when given, else load_demo's published one, never an empty one.
    assert "DEMO_ADMIN_PASSWORD" not in demo_environment("migrate", own_secrets())
    own = secrets.token_urlsafe(16)
    given = demo_environment("migrate", {**own_secrets(), "DEMO_ADMIN_PASSWORD": own})
    assert given["DEMO_ADMIN_PASSWORD"] == own
    # The settings take it, and every start-up check passes.
    assert run_manage("manage.py", "check", env=demo_environment("web", own_secrets())).returncode == 0


def test_compose__sandbox_without_the_public_demo_flag__refused_by_the_settings() -> None:
    sandbox_only = {**demo_environment("web", own_secrets()), "SUOMIFI_SANDBOX_PUBLIC_DEMO": "0"}
    result = run_manage("manage.py", "check", env=sandbox_only)
    assert "SUOMIFI_SANDBOX_PUBLIC_DEMO=1" in result.stderr


def test_compose__demo_file__no_secret_of_its_own() -> None:
    text = (ROOT / "deploy" / "compose" / "demo.yml").read_text(encoding="utf-8")
    for service in DEMO["services"].values():
        for name, value in service["environment"].items():
            assert not SECRET_NAME.search(name) or value is None, name
    assert "${" not in text  # nothing taken from the shell but the pass-through above


def test_compose__web_worker_and_beat_run_as_the_app_role__only_migrate_as_the_owner() -> None:
    """The audit trail is safe from the app's own processes (docs/data-protection.md, "Database roles"): they connect
    as the role the database's first start creates, and `migrate`, as the owner, grants it its rights before any of
    them starts."""
    given = own_secrets()
    owner = database_environment(given)
    migrate = migrate_environment(given)
    role = migrate["DATABASE_APP_ROLE"]
    assert migrate["DATABASE_URL"].startswith(f"postgres://kelabooking:{given['OWNER_DB_PASSWORD']}@")
    assert app_environment(given)["DATABASE_URL"].startswith(f"postgres://{role}:{given['APP_DB_PASSWORD']}@")
    assert "DATABASE_APP_ROLE" not in app_environment(given)
    # The image's superuser is nobody's connection: `migrate` runs as a plain owner (a function of the owner's that
    # runs as the owner, such as the audit expiry, runs with no superuser's rights).
    assert owner["POSTGRES_USER"] == "postgres"
    assert all(
        given["POSTGRES_PASSWORD"] not in environment["DATABASE_URL"]
        for environment in (migrate, app_environment(given))
    )
    script = INIT_SCRIPT.read_text(encoding="utf-8")
    assert f"CREATE ROLE {role} LOGIN NOSUPERUSER" in script
    assert "CREATE ROLE kelabooking LOGIN NOSUPERUSER" in script
    assert "ALTER DATABASE kelabooking OWNER TO kelabooking" in script
    for password in ("OWNER_DB_PASSWORD", "APP_DB_PASSWORD"):  # from the environment, never the file
        assert f'="${password}"' in script
    assert "./deploy/compose/initdb:/docker-entrypoint-initdb.d:ro" in COMPOSE["services"]["db"]["volumes"]
    for service in ("web", "worker", "beat"):
        assert COMPOSE["services"][service]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def _seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, duration
    return int(match[1])


def test_compose__start_order__web_worker_beat_wait_for_migrate_and_healthy_db_and_redis() -> None:
    for service in ("web", "worker", "beat"):
        assert COMPOSE["services"][service]["depends_on"] == {
            "db": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }
    assert COMPOSE["services"]["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}


def test_compose__restart_policies__long_running_services_recover_migrate_retries_until_it_succeeds() -> None:
    for service in LONG_RUNNING:
        assert COMPOSE["services"][service]["restart"] == "unless-stopped", service
    assert COMPOSE["services"]["migrate"]["restart"] == "on-failure"


def test_compose__every_long_running_service_has_a_healthcheck__migrate_none() -> None:
    for service in LONG_RUNNING:
        healthcheck = COMPOSE["services"][service]["healthcheck"]
        assert healthcheck["test"][0] in {"CMD", "CMD-SHELL"}, service
        assert len(healthcheck["test"]) > 1, service
    assert COMPOSE["services"]["migrate"]["healthcheck"] == {"disable": True}
    assert "/healthz" in " ".join(COMPOSE["services"]["web"]["healthcheck"]["test"])
    assert (
        "control.ping(destination=['celery@' + socket.gethostname()]"
        in COMPOSE["services"]["worker"]["healthcheck"]["test"][3]
    )


def test_compose__worker_check__imports_what_it_names() -> None:
    """The check's code runs (here against the in-memory broker, where no worker answers: it fails, as it should
    when the container's worker does not answer)."""
    code = COMPOSE["services"]["worker"]["healthcheck"]["test"][3]
    env = {"PATH": os.environ["PATH"], "DEBUG": "1", "CELERY_BROKER_URL": "memory://localhost/"}
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code.replace("timeout=10", "timeout=0.5")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr


def test_compose__app_services__read_only_root_with_tmp_only() -> None:
    for service in APP_SERVICES:
        assert COMPOSE["services"][service]["read_only"] is True
        assert COMPOSE["services"][service]["tmpfs"] == ["/tmp"]  # noqa: S108 - the container's own tmpfs


def test_compose__stop_grace__longer_than_gunicorns_and_celerys_own() -> None:
    from django.conf import settings

    gunicorn = runpy.run_path(str(ROOT / "kelabooking" / "gunicorn.conf.py"))
    assert _seconds(COMPOSE["services"]["web"]["stop_grace_period"]) >= gunicorn["graceful_timeout"] + 5
    assert (
        _seconds(COMPOSE["services"]["worker"]["stop_grace_period"])
        >= settings.CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT + 15
    )


def test_compose__no_literal_secret__secret_names_only_interpolated_without_a_default() -> None:
    environments = [COMPOSE["x-app"]["environment"]] + [
        service.get("environment", {}) for service in COMPOSE["services"].values()
    ]
    for environment in environments:
        for name, value in environment.items():
            if SECRET_NAME.search(name) and value is not None:  # None: passed on from the shell when set there
                assert re.fullmatch(rf"\$\{{{name}:(\?[^}}]+|-)\}}", str(value)), (name, value)
            if "URL" in name and "@" in str(value):  # a password in a URL comes from the environment too
                assert re.search(r":\$\{\w+:\?[^}]+\}@", str(value)), (name, value)


# --- Metrics and staff sign-in, as obs and staff need them in this shape ---------------------------------------------


def test_compose__metrics__token_optional__each_container_counts_in_its_own_tmpfs__worker_serves_a_port() -> None:
    """/metrics needs METRICS_TOKEN from the shell, or is not there (404): no token is written here, and a start without
    one works. Every app container counts in a directory of its own tmpfs (made and emptied at the server's start)."""
    without = app_environment(own_secrets())
    assert without["METRICS_TOKEN"] == ""
    token = secrets.token_urlsafe(32)
    app = app_environment({**own_secrets(), "METRICS_TOKEN": token})
    assert app["METRICS_TOKEN"] == token
    directory = Path(app["PROMETHEUS_MULTIPROC_DIR"])
    assert directory.is_absolute()
    for service in ("web", "worker"):
        assert any(directory.is_relative_to(tmpfs) for tmpfs in COMPOSE["services"][service]["tmpfs"]), service
    # The worker's own counters on its port, on the compose network only (never published on the host).
    assert int(app["METRICS_PORT"]) > 1024
    assert "ports" not in COMPOSE["services"]["worker"]
    # Beat's and the workers' periodic task times go to the shared cache that web's /metrics reads.
    for service in ("web", "worker", "beat"):
        assert COMPOSE["services"][service]["environment"]["REDIS_URL"] == app["REDIS_URL"] != ""


def _staff_settings_named_in_settings_py() -> set[str]:
    text = (ROOT / "kelabooking" / "settings.py").read_text(encoding="utf-8")
    return set(re.findall(r'env_\w+\(\s*"(STAFF_\w+)"', text))


STAFF = {
    "STAFF_OIDC_OP_ISSUER": "https://login.kela.example/realms/staff",
    "STAFF_OIDC_RP_CLIENT_ID": "kelabooking-admin",
    "STAFF_OIDC_RP_CLIENT_SECRET": secrets.token_urlsafe(32),
    "STAFF_OIDC_GROUP_MAP": '{"kelabooking-audit": "Audit readers"}',
    "STAFF_BREAK_GLASS_USERS": "fpa-break-glass",
}


def test_compose__staff_sign_in__every_staff_setting_passed_on_from_the_shell__none_written_here() -> None:
    names = _staff_settings_named_in_settings_py()
    assert {"STAFF_OIDC_OP_ISSUER", "STAFF_OIDC_RP_CLIENT_SECRET", "STAFF_BREAK_GLASS_USERS"} <= names
    for name in names:
        assert COMPOSE["x-app"]["environment"][name] is None, name
    app = app_environment({**own_secrets(), **STAFF})
    assert {name: app[name] for name in STAFF} == STAFF
    # Not set in the shell: left out, so the settings' own defaults hold (an empty STAFF_OIDC_MFA_AMR would refuse
    # every sign-in, an empty client id would turn the sandbox's staff mode off).
    assert not names & set(app_environment(own_secrets()))
    assert not names & set(migrate_environment(own_secrets()))
    assert (
        migrate_environment({**own_secrets(), **STAFF})["STAFF_OIDC_RP_CLIENT_ID"] == STAFF["STAFF_OIDC_RP_CLIENT_ID"]
    )


def test_compose__staff_sign_in_given__production_start_without_w101_or_w102__without_it_w101() -> None:
    configured = run_manage(
        "manage.py", "check", "--fail-level", "WARNING", env=app_environment({**own_secrets(), **STAFF})
    )
    assert configured.returncode == 0, configured.stdout + configured.stderr
    assert "partners.W10" not in configured.stdout + configured.stderr
    passwords = run_manage("manage.py", "check", env=app_environment(own_secrets()))
    assert "partners.W101" in passwords.stdout + passwords.stderr


def test_compose__demo_file__staff_sign_in_through_the_sandbox_staff_mode() -> None:
    staff = settings_in_fresh_process(
        demo_environment("web", own_secrets()), "STAFF_OIDC_ENABLED", "STAFF_OIDC_OP_ISSUER", "STAFF_OIDC_GROUP_MAP"
    )
    assert staff["STAFF_OIDC_ENABLED"] is True
    assert staff["STAFF_OIDC_OP_ISSUER"] == "http://localhost:8000/sandbox/staff-oidc"
    assert staff["STAFF_OIDC_GROUP_MAP"]


def _ignored(path: str, patterns: list[str]) -> bool:
    """The Docker builder's rule, as far as our .dockerignore uses it: a pattern matches the path or a folder above it;
    `**/name` matches that name at any depth."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    for raw in patterns:
        pattern = raw.rstrip("/")
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatchcase(part, pattern.removeprefix("**/")) for part in parts):
                return True
        elif any(fnmatch.fnmatchcase(p, pattern) and p.count("/") == pattern.count("/") for p in prefixes):
            return True
    return False


def test_dockerignore__keeps_secrets_history_and_development_out__the_app_in() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not [pattern for pattern in patterns if pattern.startswith("!")]
    for kept_out in (
        ".git/HEAD",
        ".env",
        ".env.production",
        "var/identity-code-keys",
        "db.sqlite3",
        "db.sqlite3-wal",
        ".venv/bin/python",
        "tests/conftest.py",
        "bench/growth.py",
        "staticfiles/app.css",
        "kelabooking/__pycache__/views.cpython-311.pyc",
        "node_modules/htmx.org/package.json",
        "docs/operations.md",
        "deploy/kubernetes/base/kustomization.yaml",
        ".ci/run",
        "celerybeat-schedule.heartbeat",
    ):
        assert _ignored(kept_out, patterns), kept_out
    git = ["git", "ls-files"]
    tracked = subprocess.run(git, cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()  # noqa: S603
    needed = ("manage.py", "requirements/", "kelabooking/", "partners/", "bookings/", "registry/", "templates/")
    for path in tracked:
        if path.startswith(needed + ("static/", "locale/")):
            assert not _ignored(path, patterns), path
    assert any(path.startswith("locale/") and path.endswith(".mo") for path in tracked)


def test_compose__published_ports__on_this_machine_only() -> None:
    """Plain HTTP and the mail catcher (customers' confirmations, readable without signing in) answer on the loopback
    only: another machine reaches the app through a TLS proxy, and the caught mail not at all."""
    published = {name: service["ports"] for name, service in COMPOSE["services"].items() if service.get("ports")}
    assert set(published) == {"web", "mailpit"}
    for name, ports in published.items():
        assert all(str(port).startswith("127.0.0.1:") for port in ports), name
