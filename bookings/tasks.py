from __future__ import annotations

from dataclasses import asdict

from celery import shared_task
from django.conf import settings

from bookings.services import bookings_remind, slots_generate


@shared_task
def generate_slots_task(weeks: int | None = None) -> dict[str, int]:
    """Nightly: the next SLOT_GENERATION_WEEKS weeks of slots from the opening rules (idempotent)."""
    return asdict(slots_generate(weeks=settings.SLOT_GENERATION_WEEKS if weeks is None else weeks))


@shared_task
def remind_bookings_task() -> int:
    """Every ten minutes: remind tomorrow's bookings not yet reminded, inside the send window (idempotent)."""
    return bookings_remind()
