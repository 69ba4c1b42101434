"""The message outbox shared by every app (DESIGN.md §3, "kelabooking")."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from kelabooking.message_kinds import message_kind_choices


class MessageQuerySet(models.QuerySet["Message"]):
    def due(self, *, now) -> MessageQuerySet:
        """Pending messages whose next attempt is due and that no worker holds a live claim on."""
        return self.filter(status=Message.Status.PENDING, next_attempt_at__lte=now).filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
        )


class Message(models.Model):
    class Channel(models.TextChoices):
        EMAIL = "email", _("E-mail")
        SMS = "sms", _("SMS")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    key = models.CharField(
        _("deduplication key"),
        max_length=200,  # unique: message_key_unique
        help_text=_(
            "Identifies the message by booking or request, kind and channel, so that the same message is never "
            "queued twice."
        ),
    )
    # The kinds the apps declare (kelabooking/message_kinds.py): a callable, so a new kind makes no migration.
    kind = models.CharField(_("kind"), max_length=32, choices=message_kind_choices)
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    recipient = models.CharField(_("recipient"), max_length=254)
    language = models.CharField(_("language"), max_length=8)
    # What the sender renders the texts from (e.g. the booking's id), for a kind with a renderer: the texts are then
    # written by the worker when it first sends the message (delivery.message_render), not in the caller's request.
    context = models.JSONField(_("context"), default=dict, blank=True)
    subject = models.CharField(_("subject"), max_length=200, blank=True)
    body = models.TextField(
        _("body"),
        blank=True,
        help_text=_("Written when the message is queued, or by the worker before it is first sent."),
    )
    body_html = models.TextField(_("HTML body"), blank=True)
    calendar = models.TextField(_("calendar attachment"), blank=True, help_text=_("An iCalendar (.ics) event."))
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    next_attempt_at = models.DateTimeField(_("next attempt"))  # indexed after status: message_status_due_idx
    claimed_until = models.DateTimeField(_("claimed until"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    # When the retention job erased the recipient and the texts (RETENTION_MESSAGE_DAYS): a sent message's, or a failed
    # or pending one's, which it marked failed. An erased message is never sent again (message_resend).
    erased_at = models.DateTimeField(_("erased"), null=True, blank=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="message_status_due_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="sent", sent_at__isnull=False) | (~Q(status="sent") & Q(sent_at__isnull=True)),
                name="message_sent_at_iff_sent",
            ),
            models.CheckConstraint(
                condition=~Q(recipient="") | Q(erased_at__isnull=False), name="message_recipient_not_empty"
            ),
            # Nothing puts an erased message back in the queue: it has no recipient nor texts left to send.
            models.CheckConstraint(
                condition=~Q(status="pending") | Q(erased_at__isnull=True), name="message_pending_not_erased"
            ),
            # A constraint, not unique=True: on PostgreSQL that also builds a LIKE index that no query uses.
            models.UniqueConstraint(fields=["key"], name="message_key_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} / {self.get_channel_display()} #{self.pk}"


class RetentionRun(models.Model):
    """One run of the retention job (kelabooking/retention.py): when, with which limits, what it removed or erased."""

    started_at = models.DateTimeField(_("started"))
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    dry_run = models.BooleanField(_("dry run"), default=False, help_text=_("Counted only; nothing was changed."))
    limits = models.JSONField(
        _("limits"), default=dict, help_text=_("The retention settings the run applied, in days.")
    )
    expired_holds = models.PositiveIntegerField(_("expired holds removed"), default=0)
    contacts_erased = models.PositiveIntegerField(_("bookings' contact details erased"), default=0)
    customers_removed = models.PositiveIntegerField(_("customers removed"), default=0)
    messages_erased = models.PositiveIntegerField(_("messages' texts erased"), default=0)
    sessions_cleared = models.PositiveIntegerField(_("expired sessions cleared"), default=0)
    audit_events_removed = models.PositiveIntegerField(_("audit events removed"), default=0)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("retention run")
        verbose_name_plural = _("retention runs")
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.started_at:%Y-%m-%d %H:%M}"


class JobLock(models.Model):
    """One row per periodic job that must not run twice at once (kelabooking/jobs.py): which run holds it, until
    when at most, and when a run last finished."""

    name = models.CharField(_("job"), max_length=100, primary_key=True)
    holder = models.CharField(_("held by run"), max_length=32, blank=True)
    locked_until = models.DateTimeField(_("held until"), null=True, blank=True)
    finished_at = models.DateTimeField(_("last run finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("periodic job lock")
        verbose_name_plural = _("periodic job locks")

    def __str__(self) -> str:
        return self.name
