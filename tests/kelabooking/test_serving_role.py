"""Web, worker and beat refuse to start as a role that could rewrite the audit trail (kelabooking.E030): a superuser,
or the owner (a role that may record migrations); the app's role, with what `migrate` grants it, starts."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest

from kelabooking import crypto
from kelabooking.checks import serving_role_errors
from tests.drills import base_env, free_port, gunicorn_args, subprocess_database_url
from tests.partners.test_audit_roles import APP_ROLE, app_role, sql  # noqa: F401 - the fixture

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
OWNER_LIKE = "kelabooking_test_owner_like"


@pytest.fixture
def production(settings):
    settings.DEBUG = False
    settings.DATABASE_OWNER_SERVES = False
    return settings


def test_serving_role__superuser__refused(production) -> None:
    assert sql("SELECT current_setting('is_superuser')") == [("on",)]  # the test run's own role
    [error] = serving_role_errors("web")
    assert error.id == "kelabooking.E030"
    assert "a superuser" in error.msg
    assert "web" in error.msg


def test_serving_role__the_owner_of_a_table__refused_as_the_owner(production) -> None:
    if not sql("SELECT 1 FROM pg_roles WHERE rolname = %s", [OWNER_LIKE]):
        sql(f"CREATE ROLE {OWNER_LIKE} NOLOGIN")  # gone with the test's transaction
    sql("CREATE TABLE kelabooking_test_owned (id int)")
    sql(f"ALTER TABLE kelabooking_test_owned OWNER TO {OWNER_LIKE}")
    sql(f"GRANT USAGE ON SCHEMA public TO {OWNER_LIKE}")
    sql(f"SET LOCAL ROLE {OWNER_LIKE}")
    [error] = serving_role_errors("worker")
    assert error.id == "kelabooking.E030"
    assert f"as {OWNER_LIKE}, the owner of the schema or of a table in it" in error.msg


def test_serving_role__the_app_role__starts(production, app_role) -> None:  # noqa: F811 - the fixture
    assert serving_role_errors("beat") == []


def test_serving_role__debug_or_an_explicit_bench_setting__not_asked(production) -> None:
    production.DEBUG = True
    assert serving_role_errors("web") == []
    production.DEBUG = False
    production.DATABASE_OWNER_SERVES = True
    assert serving_role_errors("web") == []


def test_gunicorn__as_the_databases_superuser__refuses_to_start_naming_the_check() -> None:
    env = base_env(
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1",
        IDENTITY_CODE_ENCRYPTION_KEYS=crypto.new_encryption_key(),
        IDENTITY_CODE_HMAC_KEYS=crypto.new_hmac_key(),
        DATABASE_URL=subprocess_database_url(),
        GUNICORN_BIND=f"127.0.0.1:{free_port()}",
        GUNICORN_WORKERS="1",
        EMAIL_HOST="127.0.0.1",
        SMS_GATEWAY_URL="http://127.0.0.1:9/",
    )
    finished = subprocess.run(  # noqa: S603 - our own server
        gunicorn_args(), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    output = finished.stdout + finished.stderr
    assert finished.returncode != 0
    assert "kelabooking.E030" in output
    assert "cannot start" in output
