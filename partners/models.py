from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import F, Q
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from kelabooking.logging import IDENTITY_CODE_RE


class User(AbstractUser):
    """Everyone who signs in.

    FPA staff are ordinary staff users of the admin (username and password). Partner caseworkers sign in through
    Suomi.fi and are matched on their personal identity code, never on e-mail; their username is derived, random.
    """

    identity_code = models.CharField(
        _("personal identity code"), max_length=11, unique=True, null=True, blank=True, editable=False
    )

    class Meta(AbstractUser.Meta):
        verbose_name = _("user")
        verbose_name_plural = _("users")
        swappable = "AUTH_USER_MODEL"

    @property
    def is_partner(self) -> bool:
        return self.identity_code is not None


class AppendOnlyError(Exception):
    """The audit trail is never changed or deleted."""


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("audit events cannot be updated")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("audit events cannot be deleted")


class AuditEvent(models.Model):
    """Who did what, acting for which organisation, on which customer (Act 906/2019 § 17). Append-only.

    The database refuses UPDATE and DELETE too (triggers in the migration), so not even raw SQL from the app
    changes history.
    """

    class Action(models.TextChoices):
        LOGIN = "login", _("Logged in")
        LOGIN_FAILED = "login_failed", _("Login failed")
        ORGANISATION_CHOSEN = "organisation_chosen", _("Organisation chosen")
        ORGANISATION_CHOICE_FAILED = "organisation_choice_failed", _("Organisation choice failed")
        MANDATE_MISSING = "mandate_missing", _("Mandate missing")
        ORGANISATION_NOT_IN_REGISTRY = "organisation_not_in_registry", _("Organisation not in the registry")
        TERMS_ACCEPTED = "terms_accepted", _("Terms accepted")
        CUSTOMER_OPENED = "customer_opened", _("Customer opened")
        CONTACT_DETAILS_SHOWN = "contact_details_shown", _("Contact details shown")
        BOOKING_HELD = "booking_held", _("Time held")
        BOOKING_CONFIRMED = "booking_confirmed", _("Booking confirmed")
        BOOKING_CANCELLED = "booking_cancelled", _("Booking cancelled")
        BOOKING_MOVED = "booking_moved", _("Booking moved")
        SESSION_EXPIRED = "session_expired", _("Session expired")
        LOGOUT = "logout", _("Logged out")

    class Outcome(models.TextChoices):
        SUCCESS = "success", _("Success")
        REFUSED = "refused", _("Refused")
        ERROR = "error", _("Error")

    created_at = models.DateTimeField(_("time"), auto_now_add=True, db_index=True)
    # Actor and customer have no index of their own: the two composite indexes below lead with them.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("actor"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audit_events",
        db_index=False,
    )
    actor_name = models.CharField(_("actor's name"), max_length=300, blank=True)
    actor_identity_code = models.CharField(_("actor's identity code"), max_length=11, blank=True)
    organisation_business_id = models.CharField(_("organisation business ID"), max_length=9, blank=True)
    organisation_name = models.CharField(_("organisation"), max_length=200, blank=True)
    action = models.CharField(_("action"), max_length=32, choices=Action.choices)
    customer = models.ForeignKey(
        "bookings.Customer",
        verbose_name=_("customer"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audit_events",
        db_index=False,
    )
    booking = models.ForeignKey(
        "bookings.Booking",
        verbose_name=_("booking"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audit_events",
    )
    outcome = models.CharField(_("outcome"), max_length=8, choices=Outcome.choices, default=Outcome.SUCCESS)
    request_id = models.CharField(_("request ID"), max_length=64, blank=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["customer", "-created_at"], name="audit_customer_time_idx"),
            models.Index(fields=["actor", "-created_at"], name="audit_actor_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.get_action_display()}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise AppendOnlyError("audit events cannot be updated")
        self.check_details()
        super().save(*args, **kwargs)

    def check_details(self) -> None:
        if IDENTITY_CODE_RE.search(json.dumps(self.details, ensure_ascii=False)):
            raise ValueError("identity codes never go into audit details")

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("audit events cannot be deleted")


class NoticeQuerySet(models.QuerySet["Notice"]):
    def valid_at(self, moment) -> NoticeQuerySet:
        return self.filter(valid_from__lte=moment, valid_until__gt=moment)


class Notice(models.Model):
    """A message shown on partner pages while valid, e.g. a planned maintenance break."""

    class Level(models.TextChoices):
        INFO = "info", _("Information")
        WARNING = "warning", _("Warning")

    level = models.CharField(_("level"), max_length=8, choices=Level.choices, default=Level.INFO)
    text_fi = models.TextField(_("text in Finnish"), max_length=1000)
    text_sv = models.TextField(_("text in Swedish"), max_length=1000)
    text_en = models.TextField(_("text in English"), max_length=1000)
    valid_from = models.DateTimeField(_("shown from"))
    valid_until = models.DateTimeField(_("shown until"))

    objects = NoticeQuerySet.as_manager()

    class Meta:
        verbose_name = _("notice")
        verbose_name_plural = _("notices")
        ordering = ["valid_from"]
        constraints = [
            models.CheckConstraint(condition=Q(valid_until__gt=F("valid_from")), name="notice_valid_window"),
        ]

    def __str__(self) -> str:
        return self.text_en[:60]

    @property
    def text(self) -> str:
        return {"fi": self.text_fi, "sv": self.text_sv}.get(get_language(), self.text_en)
