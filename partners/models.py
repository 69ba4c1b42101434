from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractUser, UserManager
from django.db import connection, models, transaction
from django.db.models import F, Q
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from kelabooking import crypto
from kelabooking.fields import (
    EncryptedIdentityCodeField,
    IdentityCodeDigestField,
    IdentityCodeIndexField,
    key_id_index,
)
from kelabooking.logging import IDENTITY_CODE_RE
from kelabooking.validators import validate_date_in_range
from partners.database import audit_events_expire, audit_expiry_cutoff


class UserQuerySet(models.QuerySet["User"]):
    def lock(self, pk: int) -> None:
        """Lock this user's row until the transaction ends (taking only the key): a partner's steps that must not
        run side by side (two tabs, a double click) take it first, and run one after the other."""
        list(self.select_for_update(no_key=True).filter(pk=pk).values_list("pk"))

    def with_identity_code(self, code: str) -> UserQuerySet:
        """The partner with this canonical identity code, found through the keyed index (under any configured key)."""
        return self.filter(identity_code_digest__in=crypto.digests(code))


class PartnerUserManager(UserManager.from_queryset(UserQuerySet)):
    """Django's user manager, with the look-up of a partner by identity code."""


class User(AbstractUser):
    """Everyone who signs in.

    FPA staff sign in to the admin through Kela's identity provider and are matched on their subject there, their
    groups set from its claims at every sign-in (partners/staff/); break-glass accounts keep a password. Partner
    caseworkers sign in through Suomi.fi and are matched on their personal identity code, never on e-mail; their
    username is derived, random.
    """

    # Encrypted at rest; found through its keyed index, unique as the plain column was (kelabooking/crypto.py).
    identity_code = EncryptedIdentityCodeField(_("personal identity code"), null=True, blank=True, editable=False)
    identity_code_digest = IdentityCodeDigestField(_("identity code index"), null=True, unique=True)
    # FPA staff who sign in through Kela's identity provider: their subject there (partners/staff/).
    staff_subject = models.CharField(
        _("subject at the staff identity provider"), max_length=255, null=True, blank=True, unique=True, editable=False
    )

    objects = PartnerUserManager()

    class Meta(AbstractUser.Meta):
        verbose_name = _("user")
        verbose_name_plural = _("users")
        swappable = "AUTH_USER_MODEL"
        indexes = [
            key_id_index("identity_code", name="user_code_key_idx"),
            key_id_index("identity_code_digest", name="user_digest_key_idx"),
        ]

    @property
    def is_partner(self) -> bool:
        return self.identity_code is not None


class AppendOnlyError(Exception):
    """The audit trail is never changed or deleted, but by the retention job and the key rotation."""


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> list[AuditEvent]:
        """Several events in one INSERT, each checked as `save` checks one."""
        objs = list(objs)
        for event in objs:
            event.prepare_for_insert()
        return super().bulk_create(objs, *args, **kwargs)

    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("audit events cannot be updated")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("audit events cannot be deleted")

    def expiry_cutoff(self, before: dt.datetime) -> dt.datetime:
        """The time before which `expire(before=…)` removes events: `before`, or on PostgreSQL the database's own
        limit where that is earlier. Read it in the transaction that expires, and count with it."""
        if connection.vendor == "postgresql":
            return audit_expiry_cutoff(connection=connection, before=before)
        return before

    def expire(self, *, before: dt.datetime) -> int:
        """Remove every event recorded before `before`: the retention job's path, the only one that removes events
        (kelabooking/retention.py). On PostgreSQL through the database's own function, which removes none younger
        than the audit period it knows (partners/database.py). Returns how many went."""
        if connection.vendor == "postgresql":
            return audit_events_expire(connection=connection, before=before)
        with transaction.atomic():
            deleted, _by_model = models.QuerySet.delete(self.model.objects.filter(created_at__lt=before))
        return deleted

    def rewrite(self, **kwargs: Any) -> int:
        """Put the same actor code under a new key, or the customer's index under a new HMAC key: the key rotation's
        path, no other change (on PostgreSQL the trigger refuses any other, and only the owner's role may make it)."""
        if not kwargs or set(kwargs) - REWRITABLE:
            raise AppendOnlyError(f"key rotation rewrites only {', '.join(sorted(REWRITABLE))}")
        return models.QuerySet.update(self, **kwargs)


# What the key rotation may rewrite of an audit event: the stored ciphertext of the actor's code and the customer's
# keyed index (partners migration 0008's trigger allows the same two columns).
REWRITABLE = frozenset({"actor_identity_code", "customer_digest"})


class AuditEvent(models.Model):
    """Who did what, acting for which organisation, on which customer (Act 906/2019 § 17). Append-only.

    On PostgreSQL the database refuses every other UPDATE and DELETE too, whoever asks (the trigger of partners
    migration 0008), and the app's own role may only read and append (docs/data-protection.md, "Database roles").
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
        RETENTION_RUN = "retention_run", _("Retention run")
        LOGOUT = "logout", _("Logged out")
        STAFF_LOGIN = "staff_login", _("Staff signed in")
        STAFF_LOGIN_REFUSED = "staff_login_refused", _("Staff sign-in refused")
        STAFF_LOGOUT = "staff_logout", _("Staff signed out")
        STAFF_BREAK_GLASS = "staff_break_glass", _("Break-glass password sign-in")
        STAFF_CUSTOMER_SEARCHED = "staff_customer_searched", _("Staff looked up who handled a customer")
        STAFF_CALL_LIST_EXPORTED = "staff_call_list_exported", _("Staff exported a call list")

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
    actor_identity_code = EncryptedIdentityCodeField(_("actor's identity code"), blank=True)
    organisation_business_id = models.CharField(_("organisation business ID"), max_length=9, blank=True)
    organisation_name = models.CharField(_("organisation"), max_length=200, blank=True)
    action = models.CharField(_("action"), max_length=32, choices=Action.choices)
    customer = models.ForeignKey(
        "bookings.Customer",
        verbose_name=_("customer"),
        null=True,
        blank=True,
        # The retention job removes customers after their time; their events stay, found by `customer_digest`.
        on_delete=models.SET_NULL,
        related_name="audit_events",
        db_index=False,
    )
    customer_digest = IdentityCodeIndexField(_("customer's identity code index"), blank=True)
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
            models.Index(fields=["customer_digest", "-created_at"], name="audit_customer_digest_time_idx"),
            key_id_index("actor_identity_code", name="audit_actor_code_key_idx"),
            key_id_index("customer_digest", name="audit_customer_digest_key_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.get_action_display()}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.prepare_for_insert()
        super().save(*args, **kwargs)

    def prepare_for_insert(self) -> None:
        if self.pk is not None:
            raise AppendOnlyError("audit events cannot be updated")
        self.check_details()
        if self.customer_id is not None and not self.customer_digest:
            self.customer_digest = self.customer.identity_code_digest  # found by it after the customer is gone

    def check_details(self) -> None:
        if IDENTITY_CODE_RE.search(json.dumps(self.details, ensure_ascii=False)):
            raise ValueError("identity codes never go into audit details")

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("audit events cannot be deleted")


class RemovedAuditEvents(models.Model):
    """How many of one customer's audit events a retention run removed, and of which period: "who handled this
    customer" still tells that there were some. Keyed by the customer's identity code index, as the events were."""

    run = models.ForeignKey(
        "kelabooking.RetentionRun", verbose_name=_("retention run"), on_delete=models.PROTECT, related_name="+"
    )
    customer_digest = IdentityCodeIndexField(_("customer's identity code index"), db_index=True)
    events = models.PositiveIntegerField(_("events removed"))
    oldest = models.DateTimeField(_("oldest removed"))
    newest = models.DateTimeField(_("newest removed"))

    class Meta:
        verbose_name = _("removed audit events")
        verbose_name_plural = _("removed audit events")
        indexes = [key_id_index("customer_digest", name="removed_audit_digest_key_idx")]

    def __str__(self) -> str:
        return f"{self.events} ({self.oldest:%Y-%m-%d}–{self.newest:%Y-%m-%d})"


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
    valid_from = models.DateTimeField(_("shown from"), validators=[validate_date_in_range])
    valid_until = models.DateTimeField(_("shown until"), validators=[validate_date_in_range])

    objects = NoticeQuerySet.as_manager()

    class Meta:
        verbose_name = _("notice")
        verbose_name_plural = _("notices")
        ordering = ["valid_from"]
        constraints = [
            models.CheckConstraint(condition=Q(valid_until__gt=F("valid_from")), name="notice_valid_window"),
        ]

    def __str__(self) -> str:
        """The text in the page's language (the admin's messages name a notice so), cut short."""
        return self.text[:60]

    @property
    def text(self) -> str:
        return {"fi": self.text_fi, "sv": self.text_sv}.get(get_language(), self.text_en)
