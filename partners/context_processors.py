from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from kelabooking import clock
from partners.context import acting_context
from partners.models import Notice


def partner(request: HttpRequest) -> dict[str, object]:
    """The acting context and the notices in force, evaluated only by pages that show them."""
    return {
        "acting": SimpleLazyObject(lambda: acting_context(request)),
        "notices": SimpleLazyObject(lambda: list(Notice.objects.valid_at(clock.now()))),
    }
