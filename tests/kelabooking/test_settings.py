"""The one settings module, loaded in a fresh process with the environment production or `make run` gives it."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kelabooking import crypto

ROOT = Path(__file__).resolve().parents[2]
# Secrets of its own, made for this run: one written here would be published (kelabooking.E003 refuses those).
PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "kelabooking.example",
    # Several gunicorn workers share the rate limits through Redis (kelabooking.E001 refuses them without it).
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    # Identity codes are stored encrypted: production gives both key lists (kelabooking.E002 refuses it without).
    "IDENTITY_CODE_ENCRYPTION_KEYS": crypto.new_encryption_key(),
    "IDENTITY_CODE_HMAC_KEYS": crypto.new_hmac_key(),
    # Messages go to a relay and a gateway (kelabooking.E020 and E021 refuse the console backends).
    "EMAIL_HOST": "smtp.kelabooking.example",
    "SMS_GATEWAY_URL": "https://sms.kelabooking.example/send",
    # Staff sign in through Kela's identity provider, with a break-glass account (partners.W101 and W102 warn).
    "STAFF_OIDC_OP_ISSUER": "https://login.kela.example/realms/staff",
    "STAFF_OIDC_RP_CLIENT_ID": "kelabooking-admin",
    "STAFF_OIDC_RP_CLIENT_SECRET": secrets.token_urlsafe(32),
    "STAFF_BREAK_GLASS_USERS": "fpa-break-glass",
}
DUMP = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({name: getattr(settings, name, None) for name in %r}, default=str))
"""


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Only what a shell has: none of the test process's own settings leak into the fresh process.
    base = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR") if key in os.environ}
    return subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, *args],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "kelabooking.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def settings_in_fresh_process(env: dict[str, str], *names: str) -> dict:
    result = run_manage("-c", DUMP % (names,), env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_settings__check_deploy__reports_nothing_with_production_environment() -> None:
    result = run_manage("manage.py", "check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SECRET_KEY", "compose-local-secret-change-me-0123456789abcdefghijklmnopqrstuvwxyz"),
        ("SECRET_KEY", "django-insecure-local-development-key-only-for-debug"),
        (
            "IDENTITY_CODE_ENCRYPTION_KEYS",
            f"{crypto.new_encryption_key()},B9UO3XURmalYsgcGAEgQN2MVz6pILJsKVjJFXxavte4=",
        ),
        ("IDENTITY_CODE_HMAC_KEYS", "vJm7TpVs6e3CgepCmWtK8UnAZAwJ7uEGmNz6Ir1mlh8"),  # without its padding, too
        ("IDENTITY_CODE_HMAC_KEYS", "wI7Gd5ADdjxIipapVluMLosJWs-5wiKabK8WAn_ERNM="),
        ("DATABASE_URL", "postgres://kelabooking:kelabooking@db:5432/kelabooking"),
        ("STAFF_OIDC_RP_CLIENT_SECRET", "kelabooking-staff-sandbox-secret"),
    ],
)
def test_settings__check__refuses_a_secret_published_in_the_repository_unless_debug_or_public_demo(
    variable: str, value: str
) -> None:
    environment = {**PRODUCTION, variable: value}
    result = run_manage("manage.py", "check", "--deploy", env=environment)
    assert result.returncode != 0
    assert "kelabooking.E003" in result.stderr
    assert variable in result.stderr or "DATABASE_URL" in result.stderr
    assert value.split(",")[-1] not in result.stdout + result.stderr  # named, never printed
    for allowed in ({"DEBUG": "1"}, {"SUOMIFI_SANDBOX": "1", "SUOMIFI_SANDBOX_PUBLIC_DEMO": "1"}):
        result = run_manage("manage.py", "check", env={**environment, **allowed})
        assert "kelabooking.E003" not in result.stderr, allowed


def _example_secret(name: str) -> str:
    """A value of the example Secret (deploy/kubernetes/secret.example.yaml), as an operator could apply it."""
    documents = yaml.safe_load_all((ROOT / "deploy/kubernetes/secret.example.yaml").read_text())
    return next(document["stringData"][name] for document in documents if document["metadata"]["name"] == "kelabooking")


@pytest.mark.parametrize(
    "variable",
    ["SECRET_KEY", "METRICS_TOKEN", "SMS_GATEWAY_TOKEN", "EMAIL_HOST_PASSWORD", "STAFF_OIDC_RP_CLIENT_SECRET"],
)
def test_settings__check__refuses_the_example_secrets_placeholder_left_as_it_stands(variable: str) -> None:
    """The example Secret's SECRET_KEY ("<python3 -c '…'>") passed every check, and so did a METRICS_TOKEN copied
    from it: anyone who reads the repository could have scraped /metrics."""
    value = _example_secret(variable)
    assert value.startswith("<")

    result = run_manage("manage.py", "check", env={**PRODUCTION, variable: value})

    assert result.returncode != 0
    assert "kelabooking.E003" in result.stderr
    assert variable in result.stderr


def test_settings__sandbox_with_debug_off__refused_by_the_settings_under_any_server() -> None:
    """uwsgi, mod_wsgi or a gunicorn without our config file import the application and run no system check."""
    load = "from kelabooking.wsgi import application"
    result = run_manage("-c", load, env={**PRODUCTION, "SUOMIFI_SANDBOX": "1"})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SUOMIFI_SANDBOX_PUBLIC_DEMO=1" in result.stderr
    demo = run_manage("-c", load, env={**PRODUCTION, "SUOMIFI_SANDBOX": "1", "SUOMIFI_SANDBOX_PUBLIC_DEMO": "1"})
    assert demo.returncode == 0, demo.stderr
    development = run_manage("-c", load, env={**PRODUCTION, "SUOMIFI_SANDBOX": "1", "DEBUG": "1"})
    assert development.returncode == 0, development.stderr


def test_settings__demo_flag_without_the_sandbox__refused_by_the_settings() -> None:
    """SUOMIFI_SANDBOX_PUBLIC_DEMO alone, on a site signing real people in through Suomi.fi, turned off the refusal of
    the repository's published secrets (kelabooking.E003) and of the demo admin, and the password restriction."""
    result = run_manage(
        "manage.py", "check", env={**PRODUCTION, "SUOMIFI_SANDBOX_PUBLIC_DEMO": "1", "SECRET_KEY": "collectstatic-only"}
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SUOMIFI_SANDBOX_PUBLIC_DEMO is on without SUOMIFI_SANDBOX" in result.stderr


def test_settings__debug_off__turns_the_security_settings_on() -> None:
    values = settings_in_fresh_process(
        PRODUCTION,
        "SECURE_HSTS_SECONDS",
        "SECURE_SSL_REDIRECT",
        "SESSION_COOKIE_NAME",
        "CSRF_COOKIE_NAME",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SESSION_COOKIE_SAMESITE",
        "X_FRAME_OPTIONS",
        "SECURE_REFERRER_POLICY",
        "CONTENT_SECURITY_POLICY",
    )
    assert values["SECURE_HSTS_SECONDS"] >= 31536000
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SESSION_COOKIE_NAME"].startswith("__Host-")
    assert values["CSRF_COOKIE_NAME"].startswith("__Host-")
    assert values["SESSION_COOKIE_SECURE"] is values["CSRF_COOKIE_SECURE"] is True
    assert values["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert values["X_FRAME_OPTIONS"] == "DENY"
    assert values["SECURE_REFERRER_POLICY"] == "same-origin"
    directives = json.dumps(values["CONTENT_SECURITY_POLICY"])
    assert "unsafe-inline" not in directives
    assert "unsafe-eval" not in directives


@pytest.mark.parametrize("public_demo", ["0", "1"])
def test_settings__debug_off_without_relay_or_gateway__check_refuses_the_console_backends(public_demo: str) -> None:
    env = {key: value for key, value in PRODUCTION.items() if key not in {"EMAIL_HOST", "SMS_GATEWAY_URL"}}
    demo = {"SUOMIFI_SANDBOX": public_demo, "SUOMIFI_SANDBOX_PUBLIC_DEMO": public_demo}
    result = run_manage("manage.py", "check", env={**env, **demo})
    assert result.returncode != 0
    assert "kelabooking.E020" in result.stderr
    assert "kelabooking.E021" in result.stderr


def test_settings__csp_form_action__the_origin_of_every_address_a_provider_is_configured_by() -> None:
    """The logout page's form posts to the provider, and a new customer's sign-in is redirected to it: a provider
    configured by its discovery document alone (no issuer) had its origin left out, and the browser blocked both."""
    env = PRODUCTION | {
        "OIDC_OP_DISCOVERY_URL": "https://tunnistus.example/.well-known/openid-configuration",
        "OIDC_OP_LOGOUT_ENDPOINT": "https://logout.tunnistus.example/end",
        "STAFF_OIDC_OP_ISSUER": "",
        "STAFF_OIDC_OP_DISCOVERY_URL": "https://login.kela.example/realms/staff/.well-known/openid-configuration",
        "STAFF_OIDC_OP_AUTHORIZATION_ENDPOINT": "https://authorize.kela.example/auth",
    }
    policy = settings_in_fresh_process(env, "CONTENT_SECURITY_POLICY")["CONTENT_SECURITY_POLICY"]
    assert set(policy["DIRECTIVES"]["form-action"]) >= {
        "'self'",
        "https://tunnistus.example",
        "https://logout.tunnistus.example",
        "https://login.kela.example",
        "https://authorize.kela.example",
    }


def test_settings__debug_off_without_secret_key__refuses_to_start() -> None:
    result = run_manage("manage.py", "check", env={"DEBUG": "0"})
    assert result.returncode != 0
    assert "Set SECRET_KEY" in result.stderr


def test_settings__embedded_default__sqlite_immediate_wal_and_eager_tasks(tmp_path) -> None:
    database = tmp_path / "embedded.sqlite3"
    env = {"DEBUG": "1", "DATABASE_URL": f"sqlite:///{database}"}
    values = settings_in_fresh_process(env, "DATABASES", "CELERY_TASK_ALWAYS_EAGER", "TIME_ZONE", "LANGUAGES")
    assert values["DATABASES"]["default"]["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert values["CELERY_TASK_ALWAYS_EAGER"] is True
    assert values["TIME_ZONE"] == "Europe/Helsinki"
    assert [code for code, _name in values["LANGUAGES"]] == ["fi", "sv", "en"]
    journal = run_manage(
        "-c",
        "import django; django.setup(); from django.db import connection; c = connection.cursor();"
        " print(c.execute('PRAGMA journal_mode').fetchone()[0])",
        env=env,
    )
    assert journal.stdout.strip() == "wal", journal.stderr


def test_settings__environment__selects_postgres_and_broker() -> None:
    values = settings_in_fresh_process(
        {
            "DEBUG": "1",
            "DATABASE_URL": "postgres://kela:secret@db.internal:5433/kelabooking",
            "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
            "REDIS_URL": "redis://redis.internal:6379/1",
        },
        "DATABASES",
        "CELERY_TASK_ALWAYS_EAGER",
        "CELERY_BROKER_URL",
        "CACHES",
    )
    database = values["DATABASES"]["default"]
    assert (database["ENGINE"], database["HOST"], database["PORT"], database["NAME"]) == (
        "django.db.backends.postgresql",
        "db.internal",
        5433,
        "kelabooking",
    )
    assert values["CELERY_TASK_ALWAYS_EAGER"] is False
    assert values["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"


@pytest.mark.parametrize("variable", ["DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS"])
def test_settings_reference__documents_every_environment_variable(variable: str) -> None:
    reference = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert re.search(rf"^\| `{variable}` \|", reference, flags=re.MULTILINE), variable


def test_docs__document_all_variables_the_settings_read() -> None:
    source = (ROOT / "kelabooking" / "settings.py").read_text(encoding="utf-8")
    read = set(re.findall(r'env_(?:str|bool|int|list)\("([A-Z_]+)"', source))
    assert len(read) > 100  # the pattern still finds what the settings read
    # docs/settings.md, or the reference beside it that it points to (the staff sign-in's in docs/operations.md).
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    text = "\n".join(path.read_text(encoding="utf-8") for path in documents)
    missing = sorted(name for name in read if f"`{name}`" not in text)
    assert missing == []
