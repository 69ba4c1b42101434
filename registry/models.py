"""Who may book: the organisations in Kela's registry, requests to add or remove one, and PRH sync runs."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from registry.validators import validate_business_id

BUSINESS_ID_REGEX = r"^[0-9]{7}-[0-9]$"


class OrganisationQuerySet(models.QuerySet["Organisation"]):
    def active(self) -> OrganisationQuerySet:
        return self.filter(is_active=True)


class Organisation(models.Model):
    class Kind(models.TextChoices):
        MUNICIPALITY = "municipality", _("Municipality")
        JOINT_MUNICIPAL_AUTHORITY = "joint_municipal_authority", _("Joint municipal authority")
        OTHER = "other", _("Other organisation")

    class Source(models.TextChoices):
        PRH_SYNC = "prh_sync", _("PRH sync")
        REQUEST = "request", _("Registration request")
        MANUAL = "manual", _("Managed by Kela")

    business_id = models.CharField(
        _("business ID (Y-tunnus)"), max_length=9, unique=True, validators=[validate_business_id]
    )
    name = models.CharField(_("name (Finnish)"), max_length=200)
    name_sv = models.CharField(_("name (Swedish)"), max_length=200, blank=True)
    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices, default=Kind.OTHER)
    source = models.CharField(_("source"), max_length=16, choices=Source.choices, default=Source.MANUAL)
    is_active = models.BooleanField(_("active"), default=True)
    added_at = models.DateTimeField(_("added"), auto_now_add=True)
    removed_at = models.DateTimeField(_("removed"), null=True, blank=True)
    email = models.EmailField(_("contact e-mail"), blank=True)
    phone = models.CharField(_("contact phone"), max_length=20, blank=True, help_text=_("In E.164 form."))
    note = models.TextField(_("note"), blank=True)
    prh_company_form = models.CharField(_("PRH company form code"), max_length=16, blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = OrganisationQuerySet.as_manager()

    class Meta:
        verbose_name = _("organisation")
        verbose_name_plural = _("organisations")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(business_id__regex=BUSINESS_ID_REGEX), name="organisation_business_id_format"
            ),
            models.CheckConstraint(
                condition=Q(is_active=True, removed_at__isnull=True) | Q(is_active=False, removed_at__isnull=False),
                name="organisation_removed_at_iff_inactive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.business_id})"

    def display_name(self, language: str) -> str:
        return self.name_sv if language == "sv" and self.name_sv else self.name


class RegistrationRequest(models.Model):
    class Kind(models.TextChoices):
        ADD = "add", _("Add to the registry")
        REMOVE = "remove", _("Remove from the registry")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")

    class MessageKind(models.TextChoices):
        """What the contact person is told (registry/services.py), as a kind of outbox message."""

        DECISION = "registry_decision", _("Registry decision")

    kind = models.CharField(_("request"), max_length=8, choices=Kind.choices)
    business_id = models.CharField(_("business ID (Y-tunnus)"), max_length=9, validators=[validate_business_id])
    organisation_name = models.CharField(_("organisation name"), max_length=200)
    justification = models.TextField(_("justification"), max_length=2000)
    contact_name = models.CharField(_("contact person"), max_length=200)
    contact_email = models.EmailField(_("contact e-mail"), blank=True)
    contact_phone = models.CharField(_("contact phone"), max_length=20, blank=True)
    language = models.CharField(_("language"), max_length=8, choices=settings.LANGUAGES)
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(_("received"), auto_now_add=True)
    decided_at = models.DateTimeField(_("decided"), null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("decided by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    decision_note = models.TextField(_("decision note"), blank=True)
    organisation = models.ForeignKey(
        Organisation,
        verbose_name=_("organisation"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="requests",
    )

    class Meta:
        verbose_name = _("registration request")
        verbose_name_plural = _("registration requests")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["business_id"], condition=Q(status="pending"), name="registration_request_one_pending"
            ),
            models.CheckConstraint(
                condition=~Q(contact_email="") | ~Q(contact_phone=""), name="registration_request_has_contact"
            ),
            models.CheckConstraint(
                condition=Q(status="pending", decided_at__isnull=True)
                | (~Q(status="pending") & Q(decided_at__isnull=False)),
                name="registration_request_decided_at_iff_decided",
            ),
            models.CheckConstraint(
                condition=Q(business_id__regex=BUSINESS_ID_REGEX), name="registration_request_business_id_format"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.organisation_name} ({self.business_id})"


class SyncRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    started_at = models.DateTimeField(_("started"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.RUNNING)
    dry_run = models.BooleanField(_("dry run"), default=False)
    fetched = models.PositiveIntegerField(_("fetched"), default=0)
    added = models.JSONField(_("added"), default=list, blank=True)
    renamed = models.JSONField(_("renamed"), default=list, blank=True)
    reactivated = models.JSONField(_("reactivated"), default=list, blank=True)
    deactivated = models.JSONField(_("deactivated"), default=list, blank=True)
    errors = models.TextField(_("errors"), blank=True)

    class Meta:
        verbose_name = _("registry sync run")
        verbose_name_plural = _("registry sync runs")
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.started_at:%Y-%m-%d %H:%M} {self.get_status_display()}"
