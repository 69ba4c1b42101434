"""`manage.py sync_registry [--dry-run]`: fetch municipalities and joint municipal authorities from PRH."""

from __future__ import annotations

import contextlib
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry.models import SyncRun
from registry.prh import PrhError
from registry.sync import registry_sync, registry_sync_job_lock


class Command(BaseCommand):
    help = (
        "Sync municipalities and joint municipal authorities from PRH's open data (YTJ) into the registry. "
        "Organisations added by request or by hand are never changed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Fetch and compare, record the run, but change no organisation.",
        )

    def handle(self, *args: Any, dry_run: bool, verbosity: int, **options: Any) -> None:
        def progress(message: str) -> None:
            if verbosity >= 1:
                self.stdout.write(message)

        # A dry run changes no organisation and may run beside a real one; a real run takes the nightly job's lock.
        with contextlib.nullcontext(True) if dry_run else registry_sync_job_lock() as holds:
            if not holds:
                raise CommandError(
                    "Another registry sync is in progress (the nightly job, or this command elsewhere); nothing was "
                    "done. Run it again when that sync has finished."
                )
            try:
                run = registry_sync(dry_run=dry_run, progress=progress)
            except PrhError as error:
                raise CommandError(f"Registry sync failed, nothing was changed: {error}") from error
        self._report(run, verbosity=verbosity)

    def _report(self, run: SyncRun, *, verbosity: int) -> None:
        if verbosity >= 2:
            for business_id in run.added:
                self.stdout.write(f"  added {business_id}")
            for change in run.renamed:
                self.stdout.write(f"  renamed {change['business_id']}: {change['old']} -> {change['new']}")
            for business_id in run.reactivated:
                self.stdout.write(f"  reactivated {business_id}")
            for business_id in run.deactivated:
                self.stdout.write(f"  deactivated {business_id}")
        summary = (
            f"Fetched {run.fetched}: added {len(run.added)}, renamed {len(run.renamed)}, "
            f"reactivated {len(run.reactivated)}, deactivated {len(run.deactivated)}."
        )
        if run.dry_run:
            summary = f"Dry run, nothing was written. {summary}"
        self.stdout.write(self.style.SUCCESS(summary))
