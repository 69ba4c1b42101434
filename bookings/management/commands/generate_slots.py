"""`manage.py generate_slots [--weeks N]`: make the coming weeks' slots match the opening rules. Idempotent."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from bookings.services import slots_generate


class Command(BaseCommand):
    help = (
        "Generate bookable slots from the opening rules, skipping public holidays and closed days. "
        "Booked slots are never lowered or deleted; running it again changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--weeks",
            type=int,
            default=None,
            help=f"How many weeks ahead from today (default: SLOT_GENERATION_WEEKS, {settings.SLOT_GENERATION_WEEKS}).",
        )

    def handle(self, *args: Any, weeks: int | None, **options: Any) -> None:
        weeks = settings.SLOT_GENERATION_WEEKS if weeks is None else weeks
        if weeks < 1:
            raise CommandError("--weeks must be at least 1.")
        result = slots_generate(weeks=weeks)
        self.stdout.write(
            self.style.SUCCESS(
                f"Slots for {weeks} weeks: created {result.created}, updated {result.updated}, "
                f"raised {result.raised}, removed {result.removed}; skipped {result.skipped_days} closed days."
            )
        )
