"""What this repository publishes: every secret that is or ever was in its files, and the demo admin account.

Anyone can read them, so a deployment must not run on them: with DEBUG off, and unless the site is declared a public
demonstration (SUOMIFI_SANDBOX_PUBLIC_DEMO), start-up refuses a configured secret found here (system check
kelabooking.E003) and a demo admin that can sign in (kelabooking.E004), and `load_demo` refuses to run.

Keep the list complete: tests/kelabooking/test_published.py searches the repository's files for key-shaped strings and
secret settings' values and fails on one missing here. A value stays listed after it leaves the files: history keeps it.
"""

from __future__ import annotations

import functools

from django.conf import settings

from kelabooking.crypto import MIN_KEY_BYTES, key_bytes

DEMO_ADMIN_USERNAME = "fpa-admin"
DEMO_ADMIN_PASSWORD = "kela-demo-2026"  # noqa: S105 - published: `make run` prints it

PUBLISHED_SECRETS = frozenset(
    {
        DEMO_ADMIN_PASSWORD,
        # kelabooking/settings.py: the SECRET_KEY with DEBUG on and none set
        "django-insecure-local-development-key-only-for-debug",
        # the Dockerfile: the SECRET_KEY of its collectstatic step
        "collectstatic-only",
        # docker-compose.yml before issue 21: its defaults for SECRET_KEY, the identity code keys and the database
        "compose-local-secret-change-me-0123456789abcdefghijklmnopqrstuvwxyz",
        "B9UO3XURmalYsgcGAEgQN2MVz6pILJsKVjJFXxavte4=",
        "vJm7TpVs6e3CgepCmWtK8UnAZAwJ7uEGmNz6Ir1mlh8=",
        "kelabooking",
        # the tests' settings and fixtures
        "tests-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "b8ElJeUWM6nsKPy8Dvo79ST0H8UV63GQAQp6e2ctHoI=",
        "wI7Gd5ADdjxIipapVluMLosJWs-5wiKabK8WAn_ERNM=",
        "a-long-random-production-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "5BzEvyOKEDPJFkVAuRXjOKI9O3HHz8CbySVUfutKBJc=",
        "iyYE7Kq8y2Wdpps21aPiS7TQ4hOptmWaSqElNQ4yzy8=",
        "9KpzBRQbGlmoGAXQvuLyHOgGl0YIr1F5xXbPsuZoQDE=",
        "c2Vjb25kLWhtYWMta2V5LWZvci10aGUtcm90YXRpb24tdGVzdA==",
        "gunicorn-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "secret",
        "oauth-password",
        "e2e-admin-password-0123",
        # kelabooking/settings.py: the sandbox's client secret and Valtuudet key and password
        "kelabooking-sandbox-secret",
        "kelabooking-sandbox-api-key",
        "kelabooking-sandbox-oauth-password",
        # kelabooking/settings.py: the sandbox staff mode's client secret
        "kelabooking-staff-sandbox-secret",
        # README: the password of the example database address; the example Secret's (deploy/kubernetes)
        "password",
        "PASSWORD",
    }
)


def published_values_allowed() -> bool:
    """DEBUG, or a public demonstration site: the only cases where the repository's secrets and demo admin may run."""
    return settings.DEBUG or settings.SUOMIFI_SANDBOX_PUBLIC_DEMO


def is_placeholder(value: str) -> bool:
    """An example's `<…>` left as it stands (deploy/kubernetes/secret.example.yaml shows every secret so): published
    with the example, whatever it says inside."""
    return len(value) > 2 and value.startswith("<") and value.endswith(">")


def is_published(value: str) -> bool:
    """Whether `value` is a published secret, also when a key is written differently (padding, line breaks): keys
    are compared by the bytes they stand for."""
    value = value.strip()
    if value in PUBLISHED_SECRETS or is_placeholder(value):
        return True
    secret = key_bytes(value)
    return secret is not None and len(secret) >= MIN_KEY_BYTES and secret in _published_key_bytes()


@functools.cache
def _published_key_bytes() -> frozenset[bytes]:
    decoded = (key_bytes(value) for value in PUBLISHED_SECRETS)
    return frozenset(secret for secret in decoded if secret is not None and len(secret) >= MIN_KEY_BYTES)
