"""The kinds of message the outbox carries, each declared by the app that owns it (in its `AppConfig.ready()`).

A kind says who may read its messages in the admin (the permission to see what they are about) and, for a kind whose
messages are queued without their texts, how the worker writes them (`render`). Delivery is the outbox's own: by
channel, SMS or e-mail (kelabooking/delivery.py). `Message.kind` takes its choices from here, so the admin shows each
kind by its label and a kind nobody declared is refused when a message is queued.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.utils.functional import Promise

if TYPE_CHECKING:
    from kelabooking.models import Message


@dataclass(frozen=True)
class RenderedMessage:
    body: str
    subject: str = ""
    body_html: str = ""
    calendar: str = ""


Renderer = Callable[["Message"], RenderedMessage]


@dataclass(frozen=True)
class MessageKind:
    value: str
    label: str | Promise
    # Who reads these messages in the admin (MessageAdmin): whoever holds this permission, besides superusers.
    readers: str
    # Writes the texts of a message queued without them, from its `context`, when the worker first sends it.
    render: Renderer | None = None


_kinds: dict[str, MessageKind] = {}


def message_kinds_register(
    choices: Iterable[tuple[str, str | Promise]], *, readers: str, render: Renderer | None = None
) -> None:
    """Declare kinds of message, as (value, label) pairs (a TextChoices' `choices`), read by whoever holds the
    permission `readers` and, with `render`, queued without texts and rendered by the worker."""
    for value, label in choices:
        known = _kinds.get(value)
        kind = MessageKind(value=value, label=label, readers=readers, render=render)
        if known is not None and known != kind:
            raise ValueError(f"The message kind {value!r} is declared twice")
        _kinds[value] = kind


def message_kind(value: str) -> MessageKind:
    """The declared kind `value` (KeyError if no app declared it)."""
    return _kinds[value]


def message_kinds() -> list[MessageKind]:
    return list(_kinds.values())


def message_kind_choices() -> list[tuple[str, str | Promise]]:
    """`Message.kind`'s choices: every declared kind (a callable, so that the migrations stay as they are)."""
    return [(kind.value, kind.label) for kind in _kinds.values()]
