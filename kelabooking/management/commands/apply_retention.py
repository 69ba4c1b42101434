"""`manage.py apply_retention [--dry-run]`: apply the retention rules now (beat runs them nightly), with a summary."""

from __future__ import annotations

import contextlib
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kelabooking import retention


class Command(BaseCommand):
    help = (
        "Remove or erase personal data past its retention time (RETENTION_* settings). The run is recorded under "
        "Retention runs in the admin, and a real run is audited."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count what each rule would change; change nothing.")

    def handle(self, *args: Any, dry_run: bool, **options: Any) -> None:
        # A dry run changes nothing and may run beside a real one; a real run takes the nightly job's lock.
        with contextlib.nullcontext(True) if dry_run else retention.retention_job_lock() as holds:
            if not holds:
                raise CommandError(
                    "Another retention run is in progress (the nightly job, or this command elsewhere); nothing was "
                    "done. Run it again when that run has finished."
                )
            run = retention.retention_run(dry_run=dry_run)
        would = "would be " if dry_run else ""
        for rule in retention.retention_rules():
            self.stdout.write(f"{getattr(run, rule.count):>8}  {rule.what} {would}{rule.done}")
        limits = ", ".join(f"{name} {days}" for name, days in run.limits.items())
        self.stdout.write(
            self.style.SUCCESS(f"Retention run #{run.pk} {'(dry run) ' if dry_run else ''}done ({limits}).")
        )
