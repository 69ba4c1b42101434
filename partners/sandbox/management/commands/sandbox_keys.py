"""`manage.py sandbox_keys`: generate the sandbox provider's signing key now, if it is missing, so that the workers of
a server started next only read it (the benchmarks run it before gunicorn starts). Only with the sandbox installed."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from partners.sandbox import oidc


class Command(BaseCommand):
    help = "Generate the Suomi.fi sandbox's signing key under OIDC_RP_KEY_DIR, if it is missing."

    def handle(self, *args: object, **options: object) -> None:
        oidc.op_signing_key()
