"""What is booked: the phone service's capacity (lines, opening rules, closed days, slots), customers, bookings."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Count, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from kelabooking import crypto
from kelabooking.fields import EncryptedIdentityCodeField, IdentityCodeDigestField, key_id_index
from kelabooking.validators import validate_date_in_range

SERVICE_LANGUAGES = [("fi", _("Finnish")), ("sv", _("Swedish")), ("en", _("English"))]


class ServiceLine(models.Model):
    """The matter a call is about, e.g. social assistance or housing benefits."""

    name_fi = models.CharField(_("name in Finnish"), max_length=100)
    name_sv = models.CharField(_("name in Swedish"), max_length=100)
    name_en = models.CharField(_("name in English"), max_length=100)
    partner_appointment_minutes = models.PositiveSmallIntegerField(
        _("partner appointment length (minutes)"),
        default=45,
        help_text=_("Appointments booked by partners are longer than those customers book themselves."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    position = models.PositiveSmallIntegerField(_("position in lists"), default=0)

    class Meta:
        verbose_name = _("service line")
        verbose_name_plural = _("service lines")
        ordering = ["position", "name_fi"]
        constraints = [
            models.CheckConstraint(
                condition=Q(partner_appointment_minutes__gte=5, partner_appointment_minutes__lte=240),
                name="service_line_length_5_to_240",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return {"fi": self.name_fi, "sv": self.name_sv}.get(get_language(), self.name_en)


class OpeningRule(models.Model):
    """How many agents answer a line in one language on one weekday, during one window, in a validity period."""

    class Weekday(models.IntegerChoices):
        MONDAY = 0, _("Monday")
        TUESDAY = 1, _("Tuesday")
        WEDNESDAY = 2, _("Wednesday")
        THURSDAY = 3, _("Thursday")
        FRIDAY = 4, _("Friday")
        SATURDAY = 5, _("Saturday")
        SUNDAY = 6, _("Sunday")

    service_line = models.ForeignKey(
        ServiceLine, verbose_name=_("service line"), on_delete=models.CASCADE, related_name="opening_rules"
    )
    language = models.CharField(_("service language"), max_length=2, choices=SERVICE_LANGUAGES)
    weekday = models.PositiveSmallIntegerField(_("weekday"), choices=Weekday.choices)
    opens_at = models.TimeField(_("opens at"))
    closes_at = models.TimeField(_("closes at"))
    agents = models.PositiveSmallIntegerField(_("agents"), help_text=_("Calls that can be taken at the same time."))
    valid_from = models.DateField(_("valid from"), validators=[validate_date_in_range])
    valid_until = models.DateField(_("valid until"), null=True, blank=True, validators=[validate_date_in_range])

    class Meta:
        verbose_name = _("opening rule")
        verbose_name_plural = _("opening rules")
        ordering = ["service_line", "language", "weekday", "opens_at"]
        constraints = [
            models.CheckConstraint(condition=Q(closes_at__gt=F("opens_at")), name="opening_rule_window_positive"),
            models.CheckConstraint(condition=Q(agents__gte=1), name="opening_rule_has_agents"),
            models.CheckConstraint(
                condition=Q(valid_until__isnull=True) | Q(valid_until__gte=F("valid_from")),
                name="opening_rule_validity_ordered",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.service_line} / {self.language} / {self.get_weekday_display()} "
            f"{self.opens_at:%H:%M}–{self.closes_at:%H:%M} × {self.agents}"
        )


class ClosedDay(models.Model):
    """Days the phone service is closed, beyond Finnish public holidays (which come from `holidays`)."""

    date_from = models.DateField(_("from"), validators=[validate_date_in_range])
    date_until = models.DateField(
        _("until"), help_text=_("The same date for a single day."), validators=[validate_date_in_range]
    )
    reason = models.CharField(_("reason"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("closed day")
        verbose_name_plural = _("closed days")
        ordering = ["date_from"]
        constraints = [
            models.CheckConstraint(condition=Q(date_until__gte=F("date_from")), name="closed_day_range_ordered"),
        ]

    def __str__(self) -> str:
        return f"{self.date_from}–{self.date_until} {self.reason}".strip()


class SlotQuerySet(models.QuerySet["Slot"]):
    def with_taken(self, *, now) -> SlotQuerySet:
        """Each slot with `taken`: what `BookingQuerySet.taking_capacity` counts in it, one index lookup a slot."""
        taken = (
            Booking.objects.filter(slot=OuterRef("pk"))
            .taking_capacity(now=now)
            .order_by()
            .values("slot")
            .annotate(count=Count("pk"))
            .values("count")
        )
        return self.annotate(taken=Coalesce(Subquery(taken, output_field=models.IntegerField()), 0))


class Slot(models.Model):
    """A bookable time of one line in one language; `capacity` agents can take a call then."""

    service_line = models.ForeignKey(
        ServiceLine, verbose_name=_("service line"), on_delete=models.PROTECT, related_name="slots"
    )
    language = models.CharField(_("service language"), max_length=2, choices=SERVICE_LANGUAGES)
    starts_at = models.DateTimeField(_("starts"), validators=[validate_date_in_range])
    ends_at = models.DateTimeField(_("ends"), validators=[validate_date_in_range])
    capacity = models.PositiveSmallIntegerField(_("capacity"))
    set_by_hand = models.BooleanField(
        _("set by hand"),
        default=False,
        help_text=_("Added or changed in the admin: slot generation leaves it as it is."),
    )

    objects = SlotQuerySet.as_manager()

    class Meta:
        verbose_name = _("slot")
        verbose_name_plural = _("slots")
        ordering = ["starts_at", "service_line", "language"]
        constraints = [
            models.UniqueConstraint(fields=["service_line", "language", "starts_at"], name="slot_unique_start"),
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="slot_ends_after_start"),
        ]
        indexes = [models.Index(fields=["service_line", "language", "starts_at"], name="slot_line_language_time_idx")]

    def __str__(self) -> str:
        return f"{self.service_line} {self.language} {timezone.localtime(self.starts_at):%Y-%m-%d %H:%M}"


class CustomerQuerySet(models.QuerySet["Customer"]):
    def with_identity_code(self, code: str) -> CustomerQuerySet:
        """The customer with this canonical identity code, found through the keyed index (under any configured key)."""
        return self.filter(identity_code_digest__in=crypto.digests(code))


class Customer(models.Model):
    """Kela's customer register as this system sees it: one row per personal identity code."""

    class Source(models.TextChoices):
        KELA_REGISTER = "kela_register", _("Kela's customer register")
        ENTERED_BY_PARTNER = "entered_by_partner", _("Entered by a partner")

    # Encrypted at rest; found through its keyed index, unique as the plain column was (kelabooking/crypto.py).
    identity_code = EncryptedIdentityCodeField(_("personal identity code"))
    identity_code_digest = IdentityCodeDigestField(_("identity code index"), unique=True)
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
    # Written each time a partner opens the customer (the customer step, customer_find_or_create): the retention job
    # keeps a customer a partner works with, bookings or not (RETENTION_CUSTOMER_DAYS).
    last_opened_at = models.DateTimeField(_("last opened by a partner"), null=True, blank=True)

    objects = CustomerQuerySet.as_manager()

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        indexes = [
            key_id_index("identity_code", name="customer_code_key_idx"),
            key_id_index("identity_code_digest", name="customer_digest_key_idx"),
        ]

    def __str__(self) -> str:
        # Never the identity code: this string shows up in admin and logs.
        return f"{self.first_name} {self.last_name}".strip() or f"#{self.pk}"

    @property
    def in_register(self) -> bool:
        return self.source == self.Source.KELA_REGISTER

    @property
    def masked_identity_code(self) -> str:
        """The birth date part and the century sign only (`150385-****`): enough to tell whom a page is about."""
        return f"{self.identity_code[:7]}****"


class BookingQuerySet(models.QuerySet["Booking"]):
    def taking_capacity(self, *, now) -> BookingQuerySet:
        """Confirmed bookings and holds that have not expired: what occupies a slot (DESIGN.md §4 rule 1)."""
        return self.filter(Q(status=Booking.Status.CONFIRMED) | Q(status=Booking.Status.HELD, hold_expires_at__gt=now))

    def upcoming(self, *, now) -> BookingQuerySet:
        """Confirmed bookings whose call is still ahead (`Booking.is_upcoming` for one booking)."""
        return self.filter(status=Booking.Status.CONFIRMED, slot__starts_at__gt=now)

    def conflicting(self, *, now, service_line, starts_at, ends_at) -> BookingQuerySet:
        """Upcoming bookings that a booking of `service_line` from `starts_at` to `ends_at` may not stand beside
        (DESIGN.md §4 rule 4): one of the same matter, or one whose time overlaps (touching ends do not).

        The one definition of a conflict: the services refuse a time with it, and the time step leaves out the
        times it finds. The slot's fields are values or `OuterRef`s to a slot.
        """
        return self.upcoming(now=now).filter(
            Q(slot__service_line=service_line) | Q(slot__starts_at__lt=ends_at, slot__ends_at__gt=starts_at)
        )

    def history(self, *, now) -> BookingQuerySet:
        """Past and cancelled bookings: everything but holds and what `upcoming` gives."""
        return self.exclude(status=Booking.Status.HELD).exclude(
            status=Booking.Status.CONFIRMED, slot__starts_at__gt=now
        )


class Booking(models.Model):
    class Status(models.TextChoices):
        HELD = "held", _("Held")
        CONFIRMED = "confirmed", _("Confirmed")
        CANCELLED = "cancelled", _("Cancelled")

    class Channel(models.TextChoices):
        PARTNER = "partner", _("Partner organisation")
        CUSTOMER_ONLINE = "customer_online", _("The customer online")
        KELA_PHONE_SERVICE = "kela_phone_service", _("Kela's phone service")

    class MessageKind(models.TextChoices):
        """What the customer is told about a booking (bookings/messages.py), as kinds of outbox message."""

        CONFIRMATION = "confirmation", _("Booking confirmation")
        CANCELLATION = "cancellation", _("Booking cancellation")
        CHANGE = "change", _("Booking moved to another time")
        REMINDER = "reminder", _("Reminder")

    reference = models.CharField(_("reference"), max_length=8)  # unique: booking_reference_unique
    # No index of their own: booking_slot_status_idx and booking_customer_status_idx lead with these columns, and
    # every index more is one more write on each hold, confirm and cancel.
    slot = models.ForeignKey(
        Slot, verbose_name=_("time"), on_delete=models.PROTECT, related_name="bookings", db_index=False
    )
    # Empty only once the retention job has removed the customer: the booking then stays as statistics alone.
    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="bookings",
        db_index=False,
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices)
    hold_expires_at = models.DateTimeField(_("held until"), null=True, blank=True)
    channel = models.CharField(_("made by"), max_length=20, choices=Channel.choices, default=Channel.PARTNER)
    organisation = models.ForeignKey(
        "registry.Organisation",
        verbose_name=_("organisation"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="bookings",
    )
    booked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("booked by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="bookings",
    )
    interpreter_needed = models.BooleanField(_("interpreter needed"), default=False)
    interpreter_language = models.CharField(_("interpreter language"), max_length=3, blank=True)
    contact_phone = models.CharField(_("contact phone"), max_length=20, blank=True)
    contact_email = models.EmailField(_("contact e-mail"), blank=True)
    description = models.TextField(_("description of the matter"), max_length=500, blank=True)
    # When the retention job erased the contact details and description typed for the booking (RETENTION_CONTACT_DAYS).
    contact_erased_at = models.DateTimeField(_("contact details erased"), null=True, blank=True)
    idempotency_key = models.UUIDField(_("idempotency key"), null=True, blank=True, unique=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    confirmed_at = models.DateTimeField(_("confirmed"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("cancelled"), null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("cancelled by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    cancellation_reason = models.CharField(_("reason for cancelling"), max_length=200, blank=True)
    reminded_at = models.DateTimeField(_("reminder queued"), null=True, blank=True)
    # How many times the booking was moved: the calendar entry's SEQUENCE, and part of its messages' outbox keys.
    sequence = models.PositiveSmallIntegerField(_("times moved"), default=0)

    objects = BookingQuerySet.as_manager()

    class Meta:
        verbose_name = _("booking")
        verbose_name_plural = _("bookings")
        ordering = ["-slot__starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="held", hold_expires_at__isnull=False)
                | (~Q(status="held") & Q(hold_expires_at__isnull=True)),
                name="booking_hold_expiry_iff_held",
            ),
            models.CheckConstraint(
                condition=~Q(status="confirmed")
                | (Q(confirmed_at__isnull=False) & (~Q(contact_phone="") | Q(contact_erased_at__isnull=False))),
                name="booking_confirmed_has_phone",
            ),
            models.CheckConstraint(
                condition=Q(status="cancelled", cancelled_at__isnull=False)
                | (~Q(status="cancelled") & Q(cancelled_at__isnull=True)),
                name="booking_cancelled_at_iff_cancelled",
            ),
            models.CheckConstraint(
                condition=Q(interpreter_needed=True, interpreter_language__gt="")
                | Q(interpreter_needed=False, interpreter_language=""),
                name="booking_interpreter_language_iff_needed",
            ),
            models.CheckConstraint(
                condition=~Q(channel="partner") | Q(organisation__isnull=False, booked_by__isnull=False),
                name="booking_partner_has_organisation",
            ),
            # A constraint, not unique=True: on PostgreSQL that also builds a LIKE index (varchar_pattern_ops) that no
            # query uses and that every confirm's UPDATE would write.
            models.UniqueConstraint(fields=["reference"], name="booking_reference_unique"),
            # One hold per partner: a new pick releases the old one first.
            models.UniqueConstraint(
                fields=["booked_by"], condition=Q(status="held"), name="booking_one_hold_per_partner"
            ),
        ]
        indexes = [
            models.Index(fields=["slot", "status"], name="booking_slot_status_idx"),
            models.Index(fields=["customer", "status"], name="booking_customer_status_idx"),
            # The capacity and demand view counts bookings by when they were made and cancelled (bookings/insights.py):
            # partial, so a hold (neither yet) writes neither index.
            models.Index(
                fields=["confirmed_at"], name="booking_confirmed_at_idx", condition=Q(confirmed_at__isnull=False)
            ),
            models.Index(
                fields=["cancelled_at"], name="booking_cancelled_at_idx", condition=Q(cancelled_at__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return self.reference

    def is_upcoming(self, now) -> bool:
        """The rule of `BookingQuerySet.upcoming`, for a booking already read with its slot."""
        return self.status == self.Status.CONFIRMED and self.slot.starts_at > now

    def state(self, now) -> tuple[str, str]:
        """What a person calls the booking now, as (code, label): upcoming, held, cancelled or past."""
        if self.status == self.Status.HELD:
            return "held", str(_("Held"))
        if self.status == self.Status.CANCELLED:
            return "cancelled", str(_("Cancelled"))
        if self.is_upcoming(now):
            return "upcoming", str(_("Upcoming"))
        return "past", str(_("Past"))
