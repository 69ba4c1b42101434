"""What is booked. Service lines, opening rules, slots and bookings arrive with the booking issue (DESIGN.md §3)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Customer(models.Model):
    """Kela's customer register as this system sees it: one row per personal identity code."""

    class Source(models.TextChoices):
        KELA_REGISTER = "kela_register", _("Kela's customer register")
        ENTERED_BY_PARTNER = "entered_by_partner", _("Entered by a partner")

    identity_code = models.CharField(_("personal identity code"), max_length=11, unique=True)
    first_name = models.CharField(_("first name"), max_length=100, blank=True)
    last_name = models.CharField(_("last name"), max_length=100, blank=True)
    phone = models.CharField(_("telephone"), max_length=20, blank=True, help_text=_("In E.164 form."))
    email = models.EmailField(_("e-mail"), blank=True)
    non_disclosure = models.BooleanField(
        _("non-disclosure marking"),
        default=False,
        help_text=_("Contact details are never shown to partners, pre-filled or sent anywhere."),
    )
    source = models.CharField(_("source"), max_length=20, choices=Source.choices, default=Source.KELA_REGISTER)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")

    def __str__(self) -> str:
        # Never the identity code: this string shows up in admin and logs.
        return f"{self.first_name} {self.last_name}".strip() or f"#{self.pk}"
