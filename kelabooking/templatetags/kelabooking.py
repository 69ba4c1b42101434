from __future__ import annotations

from django import template

from kelabooking.phone import format_phone

register = template.Library()


@register.filter(name="phone")
def phone_filter(value: str) -> str:
    """A stored E.164 number as people read it: national for Finnish numbers, international otherwise."""
    return format_phone(value or "")
