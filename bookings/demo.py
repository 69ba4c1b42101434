"""Demo capacity, customers and bookings for the embedded default. Idempotent: running it again changes nothing.

Every identity code is a temporary one (individual number 900–999), so no real person is ever a demo customer.
"""

from __future__ import annotations

import datetime as dt

import holidays

from bookings.models import Booking, Customer, OpeningRule, ServiceLine, Slot
from bookings.services.slots import SERVICE_TIMEZONE, slots_generate
from kelabooking import clock
from partners.models import User
from registry.models import Organisation

# (English, Finnish, Swedish); English names identify the lines when the demo is loaded again.
DEMO_SERVICE_LINES = [
    ("Social assistance", "Toimeentulotuki", "Utkomststöd"),
    ("Housing benefits", "Asumisen tuet", "Stöd för boende"),
    ("Unemployment", "Työttömyys", "Arbetslöshet"),
    ("Sickness and rehabilitation", "Sairastaminen ja kuntoutus", "Sjukdom och rehabilitering"),
    ("Pensions", "Eläkkeet", "Pensioner"),
    ("Families with children", "Lapsiperheet", "Barnfamiljer"),
    ("Students", "Opiskelijat", "Studerande"),
    ("Moving to or from Finland", "Muutto Suomeen tai Suomesta", "Flytta till eller från Finland"),
]
BUSY_LINES = {"Social assistance", "Housing benefits", "Unemployment"}  # three Finnish-speaking agents, others two
APPOINTMENT_MINUTES = 45
DEMO_SLOT_WEEKS = 4

MONDAY_TO_FRIDAY = range(5)
DEMO_OPENING_HOURS = [
    # language, weekdays, opens, closes, agents (None: three on busy lines, two on the others)
    ("fi", MONDAY_TO_FRIDAY, dt.time(9), dt.time(16), None),
    ("sv", MONDAY_TO_FRIDAY, dt.time(9), dt.time(16), 2),
    ("en", (OpeningRule.Weekday.TUESDAY, OpeningRule.Weekday.THURSDAY), dt.time(9), dt.time(12), 1),
]

DEMO_CUSTOMERS = [
    {
        "identity_code": "150385-9013",
        "first_name": "Liisa",
        "last_name": "Tavallinen",
        "phone": "+358401110001",
        "email": "liisa.tavallinen@example.com",
        "non_disclosure": False,
        "demonstrates": "an ordinary customer: phone and e-mail from the register are offered to the partner",
    },
    {
        "identity_code": "220790-9025",
        "first_name": "Pekka",
        "last_name": "Yhteystiedoton",
        "phone": "",
        "email": "",
        "non_disclosure": False,
        "demonstrates": "no phone or e-mail in the register: the partner types the contact phone",
    },
    {
        "identity_code": "030301A903R",
        "first_name": "Sanni",
        "last_name": "Suojattu",
        "phone": "+358401110003",
        "email": "sanni.suojattu@example.com",
        "non_disclosure": True,
        "demonstrates": "non-disclosure: the register's phone and e-mail are never shown or pre-filled",
    },
    {
        "identity_code": "111148-904H",
        "first_name": "Ville",
        "last_name": "Varaaja",
        "phone": "+358401110004",
        "email": "ville.varaaja@example.com",
        "non_disclosure": False,
        "demonstrates": "earlier bookings made online, by Kela's phone service and by a partner, and one upcoming",
    },
]

# The partner who made the demo's partner bookings, for Tukiverkko ry. The local Suomi.fi sandbox signs him in with
# that organisation's booking mandate (it takes him from here), so the partner sees the bookings "he" made.
DEMO_PARTNER = {"identity_code": "020594X903P", "first_name": "Tuomas", "last_name": "Mäkinen"}
DEMO_PARTNER_USERNAME = "partner-demo-tuomas"
DEMO_PARTNER_ORGANISATION = "1000000-4"  # Tukiverkko ry in registry/demo.py

HISTORY_CUSTOMER = "111148-904H"
# Fixed references keep the demo idempotent; letters and digits from the reference alphabet only.
DEMO_BOOKINGS = [
    # reference, line (English name), channel, working days from today (negative: past), local time
    ("DEM-WEB2", "Housing benefits", Booking.Channel.CUSTOMER_ONLINE, -25, dt.time(9, 45)),
    ("DEM-PHN3", "Pensions", Booking.Channel.KELA_PHONE_SERVICE, -15, dt.time(13, 30)),
    ("DEM-PRT4", "Sickness and rehabilitation", Booking.Channel.PARTNER, -7, dt.time(10, 30)),
    ("DEM-UPC5", "Social assistance", Booking.Channel.PARTNER, 5, dt.time(10, 30)),
]


def load_bookings_demo() -> None:
    lines = _load_service_lines()
    slots_generate(weeks=DEMO_SLOT_WEEKS)
    for data in DEMO_CUSTOMERS:
        fields = {key: value for key, value in data.items() if key not in {"identity_code", "demonstrates"}}
        customer = Customer.objects.with_identity_code(data["identity_code"]).first()
        customer = customer or Customer(identity_code=data["identity_code"])
        for name, value in {**fields, "source": Customer.Source.KELA_REGISTER}.items():
            setattr(customer, name, value)
        customer.save()
    partner = User.objects.with_identity_code(DEMO_PARTNER["identity_code"]).first()
    if partner is None:
        partner = User(
            username=DEMO_PARTNER_USERNAME,
            identity_code=DEMO_PARTNER["identity_code"],
            first_name=DEMO_PARTNER["first_name"],
            last_name=DEMO_PARTNER["last_name"],
        )
        partner.set_unusable_password()
        partner.save()
    _load_bookings(lines=lines, partner=partner)


def _load_service_lines() -> dict[str, ServiceLine]:
    today = clock.localnow().date()
    lines = {}
    for position, (name_en, name_fi, name_sv) in enumerate(DEMO_SERVICE_LINES):
        line, _created = ServiceLine.objects.get_or_create(
            name_en=name_en,
            defaults={
                "name_fi": name_fi,
                "name_sv": name_sv,
                "partner_appointment_minutes": APPOINTMENT_MINUTES,
                "position": position,
            },
        )
        lines[name_en] = line
        for language, weekdays, opens_at, closes_at, agents in DEMO_OPENING_HOURS:
            for weekday in weekdays:
                # Only when missing: an admin's later changes (agents, validity) stay as they are.
                OpeningRule.objects.get_or_create(
                    service_line=line,
                    language=language,
                    weekday=weekday,
                    opens_at=opens_at,
                    closes_at=closes_at,
                    defaults={"agents": agents or (3 if name_en in BUSY_LINES else 2), "valid_from": today},
                )
    return lines


def _load_bookings(*, lines: dict[str, ServiceLine], partner: User) -> None:
    customer = Customer.objects.with_identity_code(HISTORY_CUSTOMER).get()
    organisation = Organisation.objects.get(business_id=DEMO_PARTNER_ORGANISATION)
    references = [row[0] for row in DEMO_BOOKINGS]
    existing = set(Booking.objects.filter(reference__in=references).values_list("reference", flat=True))
    today = clock.localnow().date()
    for reference, line_name, channel, working_days, local_time in DEMO_BOOKINGS:
        if reference in existing:
            continue  # made once; it stays as it was (an upcoming one may have been cancelled meanwhile)
        slot = _slot(line=lines[line_name], date=_working_day(today, working_days), local_time=local_time)
        by_partner = channel == Booking.Channel.PARTNER
        Booking.objects.create(
            reference=reference,
            slot=slot,
            customer=customer,
            status=Booking.Status.CONFIRMED,
            channel=channel,
            organisation=organisation if by_partner else None,
            booked_by=partner if by_partner else None,
            contact_phone=customer.phone,
            description="Kysymys hakemuksen käsittelystä." if by_partner else "",
            confirmed_at=min(slot.starts_at - dt.timedelta(days=3), clock.now()),
        )


def _slot(*, line: ServiceLine, date: dt.date, local_time: dt.time) -> Slot:
    """The generated slot for an upcoming time, or a slot made for a past one (the generator never goes back)."""
    starts_at = dt.datetime.combine(date, local_time, tzinfo=SERVICE_TIMEZONE)
    slot, _created = Slot.objects.get_or_create(
        service_line=line,
        language="fi",
        starts_at=starts_at,
        defaults={"ends_at": starts_at + dt.timedelta(minutes=line.partner_appointment_minutes), "capacity": 3},
    )
    return slot


def _working_day(today: dt.date, working_days: int) -> dt.date:
    """The date `working_days` working days (not weekends or Finnish public holidays) after or, if negative, before."""
    finnish_holidays = holidays.Finland(years=range(today.year - 1, today.year + 2))
    step = 1 if working_days > 0 else -1
    date, remaining = today, abs(working_days)
    while remaining:
        date += dt.timedelta(days=step)
        if date.weekday() < 5 and date not in finnish_holidays:
            remaining -= 1
    return date
