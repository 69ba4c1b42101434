"""System checks of the production shape (run by `manage.py check`, `migrate`, and the start of gunicorn, of a
Celery worker and of beat: `refuse_to_start`).

The ones that read the database (tag `database`) run when the command gives them databases: `migrate`,
`check --database default`, and every process's start; other commands skip them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import is_password_usable
from django.core.checks import CheckMessage, Error
from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from django.utils.module_loading import import_string

from kelabooking import crypto, database, fields
from kelabooking.published import DEMO_ADMIN_USERNAME, is_published, published_values_allowed

# Cache backends whose counters live in one process only.
PER_PROCESS_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
}


def refuse_to_start(process: str) -> None:
    """Run every system check, the database's too, and exit naming the serious ones that are not silenced: web,
    worker and beat each refuse a configuration the checks reject (a key or password this repository published, the
    demo admin on a production site, a stored key id that is not configured, …). Django must be set up."""
    from django.core import checks

    try:
        messages = checks.run_checks(databases=list(settings.DATABASES)) + serving_role_errors(process)
    finally:
        connections.close_all()  # a process forked from this one (gunicorn's, Celery's pool) must not inherit them
    serious = [message for message in messages if message.is_serious() and not message.is_silenced()]
    if serious:
        raise SystemExit(f"kelabooking's {process} cannot start:\n" + "\n".join(str(m) for m in serious))


RIGHTS = {"superuser": "a superuser", "owner": "the owner of the schema or of a table in it (or a member of that role)"}


def serving_role_errors(process: str) -> list[CheckMessage]:
    """kelabooking.E030 (at the start of web, worker and beat only: `migrate` runs as the owner): with DEBUG off, a
    process that serves must not connect to PostgreSQL as a superuser or as the schema's owner, which could rewrite
    the audit trail that the app's role may only append to (docs/data-protection.md, "Database roles")."""
    if settings.DEBUG or settings.DATABASE_OWNER_SERVES:
        return []
    errors: list[CheckMessage] = []
    for alias in settings.DATABASES:
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        role, rights = database.owner_rights(connection)
        if rights:
            errors.append(
                Error(
                    f"The {process} connects to database {alias!r} as {role}, {RIGHTS[rights]}: it could rewrite the"
                    " audit trail.",
                    hint="Connect as the app's role, to which `migrate` grants its rights (DATABASE_APP_ROLE; "
                    'docs/operations.md, "Database roles"); only benchmarks and drills set DATABASE_OWNER_SERVES.',
                    id="kelabooking.E030",
                )
            )
    return errors


def web_workers() -> int:
    """How many web processes serve requests: gunicorn's worker count (kelabooking/gunicorn.conf.py)."""
    try:
        return int(os.environ.get("GUNICORN_WORKERS", "3"))
    except ValueError:
        return 3


def check_shared_cache(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """kelabooking.E001: with more than one web process, the rate limits need a cache that all of them share."""
    backend = settings.CACHES["default"]["BACKEND"]
    if settings.DEBUG or backend not in PER_PROCESS_CACHES or web_workers() <= 1:
        return []
    return [
        Error(
            f"{web_workers()} web workers would each keep their own rate-limit counters ({backend}).",
            hint="Set REDIS_URL so that every web process shares one cache, or run one worker (GUNICORN_WORKERS=1).",
            id="kelabooking.E001",
        )
    ]


def check_identity_code_keys(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """kelabooking.E002: identity codes are stored encrypted and looked up by a keyed hash; without both key lists
    (or with a malformed or weak key, or one given twice) nothing can be stored or found safely, so the app refuses
    to start."""
    return [
        Error(
            problem,
            hint="Generate keys with `manage.py rotate_identity_keys --new-keys` and set them in the environment.",
            id="kelabooking.E002",
        )
        for problem in crypto.check_keys()
    ]


def check_published_secrets(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """kelabooking.E003: with DEBUG off, and unless this is a public demo, no secret may be one the repository
    publishes (kelabooking/published.py): anyone could sign sessions, or undo the encryption of identity codes."""
    if published_values_allowed():
        return []
    found = [name for name, values in _secret_settings() if any(is_published(value) for value in values if value)]
    return [
        Error(
            f"{name} is a value published in the kelabooking repository: anyone can read it.",
            hint='Generate a secret of your own (docs/settings.md, "Secrets"), or set DEBUG=1 for development.',
            id="kelabooking.E003",
        )
        for name in found
    ]


def _secret_settings() -> list[tuple[str, list[str]]]:
    databases = [
        (f"The password of database {alias!r} (DATABASE_URL)", [database.get("PASSWORD") or ""])
        for alias, database in settings.DATABASES.items()
    ]
    return [
        ("SECRET_KEY", [settings.SECRET_KEY]),
        ("SECRET_KEY_FALLBACKS", list(settings.SECRET_KEY_FALLBACKS)),
        ("IDENTITY_CODE_ENCRYPTION_KEYS", list(settings.IDENTITY_CODE_ENCRYPTION_KEYS)),
        ("IDENTITY_CODE_HMAC_KEYS", list(settings.IDENTITY_CODE_HMAC_KEYS)),
        ("STAFF_OIDC_RP_CLIENT_SECRET", [settings.STAFF_OIDC_RP_CLIENT_SECRET]),
        ("METRICS_TOKEN", [settings.METRICS_TOKEN]),
        ("SMS_GATEWAY_TOKEN", [settings.SMS_GATEWAY_TOKEN]),
        ("EMAIL_HOST_PASSWORD", [settings.EMAIL_HOST_PASSWORD]),
        *databases,
    ]


def check_demo_admin(
    app_configs: Sequence[AppConfig] | None = None, databases: Sequence[str] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """kelabooking.E004 (with database access: `migrate`, `check --database`, gunicorn's start): with DEBUG off, and
    unless this is a public demo, the demo admin (published name and password, in every staff group) must not be
    able to sign in."""
    if databases is None or published_values_allowed():
        return []
    return [
        Error(
            f"The demo admin {DEMO_ADMIN_USERNAME!r} can sign in (database {alias!r}): its name and default password "
            "are published, and it is in every staff group.",
            hint="Deactivate or delete that user in the admin, or set SUOMIFI_SANDBOX_PUBLIC_DEMO=1 for a demo site.",
            id="kelabooking.E004",
        )
        for alias in databases
        if _migrated(alias)
        and any(
            is_password_usable(password)
            for password in get_user_model()
            ._default_manager.using(alias)
            .filter(username=DEMO_ADMIN_USERNAME, is_active=True)
            .values_list("password", flat=True)
        )
    ]


def check_stored_key_ids(
    app_configs: Sequence[AppConfig] | None = None, databases: Sequence[str] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """kelabooking.E005 (with database access: `migrate`, `check --database`, gunicorn's start): every key id that a
    stored identity code or keyed index names is configured. Without its key a code cannot be read, and a person
    indexed under it is not found: the next look-up would store them a second time."""
    if databases is None:
        return []
    try:
        problems = [
            problem for alias in databases if _migrated(alias) for problem in fields.every_unconfigured_key(using=alias)
        ]
    except crypto.IdentityCodeKeyError:
        return []  # no usable keys at all: kelabooking.E002 says so
    return [
        Error(
            str(problem),
            hint=f"Keep every key that stored values name in {problem.setting}; docs/data-protection.md, "
            '"Identity codes at rest".',
            id="kelabooking.E005",
        )
        for problem in problems
    ]


def _migrated(alias: str) -> bool:
    """Whether the database has every migration applied: before that its values are not in their final form (the
    migrations themselves refuse keys they cannot use)."""
    executor = MigrationExecutor(connections[alias])
    return not executor.migration_plan(executor.loader.graph.leaf_nodes())


# One check a retention setting, each with its own id; the bounds are the retention job's own (retention.BOUNDS).
RETENTION_CHECK_IDS = {
    "contact_days": "kelabooking.E010",
    "customer_days": "kelabooking.E011",
    "message_days": "kelabooking.E012",
    "audit_days": "kelabooking.E013",
}


def check_retention_limits(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """kelabooking.E010–E013: each RETENTION_* setting within its bounds. Out of them the job would erase or remove
    what is still in use (a negative RETENTION_CUSTOMER_DAYS removes customers with upcoming bookings), or empty the
    audit trail (RETENTION_AUDIT_DAYS=0); the job itself refuses such limits too."""
    from kelabooking import retention

    errors = []
    for name, check_id in RETENTION_CHECK_IDS.items():
        bound = retention.BOUNDS[name]
        problem = retention.limit_problem(name, getattr(settings, bound.setting))
        if problem:
            errors.append(
                Error(
                    problem,
                    hint=f'Set {bound.setting} (docs/data-protection.md, "Retention") within its bounds.',
                    id=check_id,
                )
            )
    return errors


def check_message_backends(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """kelabooking.E020, E021: with DEBUG off, no message backend writes what it sends to the console or to files.

    The console backends are the embedded default when no SMTP relay or SMS gateway is configured; they would print
    every recipient's e-mail address or phone number and every text (names, booking times) to the process's output,
    where the log masks cannot tell a message from a log line. A public demo is no exception: its visitors type real
    numbers and addresses."""
    from django.core.mail.backends.console import EmailBackend as ConsoleEmailBackend

    from kelabooking import sms

    if settings.DEBUG:
        return []
    errors = []
    if issubclass(import_string(settings.EMAIL_BACKEND), ConsoleEmailBackend):  # the file backend is one too
        errors.append(
            Error(
                f"EMAIL_BACKEND {settings.EMAIL_BACKEND} writes every e-mail, recipient and text, to the console or "
                "to files.",
                hint="Set EMAIL_HOST (the SMTP relay), or EMAIL_BACKEND to a backend that delivers e-mail.",
                id="kelabooking.E020",
            )
        )
    if issubclass(import_string(settings.SMS_BACKEND), sms.ConsoleBackend):
        errors.append(
            Error(
                f"SMS_BACKEND {settings.SMS_BACKEND} writes every SMS, phone number and text, to the console.",
                hint="Set SMS_GATEWAY_URL (and SMS_GATEWAY_TOKEN), or SMS_BACKEND to a backend that delivers SMS.",
                id="kelabooking.E021",
            )
        )
    return errors
