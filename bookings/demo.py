"""Demo capacity, customers and bookings for the embedded default. Idempotent: running it again changes nothing.

Every identity code is a temporary one (individual number 900–999), so no real person is ever a demo customer.
"""

from __future__ import annotations

import datetime as dt
import random

import holidays
from django.db.models import Count, Q

from bookings.models import Booking, Customer, OpeningRule, ServiceLine, Slot
from bookings.services.booking import new_reference
from bookings.services.slots import SERVICE_TIMEZONE, slots_generate
from kelabooking import clock
from kelabooking.identity import temporary_identity_code
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
    _load_statistics(lines=lines, partner=partner)


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


# --- Bookings for the capacity and demand view ---------------------------------------------------------------------
# Enough bookings for its charts to say something: the last twelve weeks and the same weeks a year earlier, and the
# next four weeks filled unevenly (the busy lines' Finnish times nearly gone in the coming days, one day full). Made
# once, in bulk, for customers of their own (temporary identity codes: nobody real), and never again: a later run
# finds the first of those customers and leaves everything as it is.
STATISTICS_CUSTOMERS = 800
STATISTICS_FIRST_BIRTHDAY = dt.date(1966, 6, 1)
STATISTICS_WEEKS = 12
STATISTICS_FIRST_NAMES = ["Aino", "Eino", "Helmi", "Väinö", "Sofia", "Leo", "Ella", "Oliver", "Amira", "Yusuf"]
STATISTICS_LAST_NAMES = ["Virtanen", "Korhonen", "Nieminen", "Mäkinen", "Hämäläinen", "Laine", "Koskinen", "Heikkinen"]
# Interpreter languages and how often each is asked for: the last ones rarely, so their counts stay below five.
STATISTICS_INTERPRETERS = [("ar", 30), ("so", 20), ("ru", 18), ("uk", 16), ("fa", 10), ("ckb", 6)]
# Rare interpreter languages, a handful of bookings each in the last week, so that the capacity and demand view always
# has small counts to hide as "< 5" (by construction: drawn by chance, they could come out as none or as many).
RARE_INTERPRETERS = ["ti", "ti", "vi", "vi", "vi"]
FULL_DAY_LINE = "Social assistance"  # its Finnish times on the next working day are all taken


def _load_statistics(*, lines: dict[str, ServiceLine], partner: User) -> None:
    codes = [temporary_identity_code(index, first_birthday=STATISTICS_FIRST_BIRTHDAY) for index in range(3)]
    if Customer.objects.with_identity_code(codes[0]).exists():
        return
    rng = random.Random(25)  # noqa: S311 - demo data, the same on every fresh database
    customers = Customer.objects.bulk_create(
        Customer(
            identity_code=temporary_identity_code(index, first_birthday=STATISTICS_FIRST_BIRTHDAY),
            first_name=STATISTICS_FIRST_NAMES[index % len(STATISTICS_FIRST_NAMES)],
            last_name=STATISTICS_LAST_NAMES[index // len(STATISTICS_FIRST_NAMES) % len(STATISTICS_LAST_NAMES)],
            phone=f"+3584012{index:05d}",
            source=Customer.Source.KELA_REGISTER,
        )
        for index in range(STATISTICS_CUSTOMERS)
    )
    organisations = list(Organisation.objects.filter(is_active=True).order_by("business_id"))
    now = clock.now()
    today = clock.localnow().date()
    monday = today - dt.timedelta(days=today.weekday())
    first = monday - dt.timedelta(weeks=STATISTICS_WEEKS - 1)
    past_days = [first + dt.timedelta(days=offset) for offset in range((today - first).days)]
    year_earlier = [day - dt.timedelta(weeks=52) for day in past_days]
    rules = list(OpeningRule.objects.filter(service_line__in=lines.values()).select_related("service_line"))

    full_day, busy_day = _working_day(today, 1), _working_day(today, 2)
    busy_place_left = False
    places: list[tuple[Slot, int]] = []  # each slot with the number of its places booked
    full_slots: set[int] = set()  # the full day's: none of their bookings cancelled

    # Past slots (the generator makes only future ones): each line's opening hours on each working day, made only
    # where a booking falls.
    finnish_holidays = holidays.Finland(years=range(today.year - 2, today.year + 1))
    taken_starts = set(Slot.objects.filter(starts_at__lt=now).values_list("service_line", "language", "starts_at"))
    past_slots = []
    for day in year_earlier + past_days:
        if day in finnish_holidays:
            continue
        for rule in rules:
            if rule.weekday != day.weekday():
                continue
            busy = rule.service_line.name_en in BUSY_LINES
            share = {"fi": 0.4 if busy else 0.2, "sv": 0.15, "en": 0.25}[rule.language]
            share *= 0.8 if day < first else 1.0  # a little less demand a year ago
            start = dt.datetime.combine(day, rule.opens_at, tzinfo=SERVICE_TIMEZONE)
            length = dt.timedelta(minutes=rule.service_line.partner_appointment_minutes)
            while (start + length).time() <= rule.closes_at and start + length <= now:
                booked = sum(rng.random() < share for _place in range(rule.agents))
                if booked and (rule.service_line.pk, rule.language, start) not in taken_starts:
                    slot = Slot(
                        service_line=rule.service_line,
                        language=rule.language,
                        starts_at=start,
                        ends_at=start + length,
                        capacity=rule.agents,
                    )
                    past_slots.append(slot)
                    places.append((slot, booked))
                start += length
    Slot.objects.bulk_create(past_slots)

    # The generated slots of the next four weeks: fuller the nearer, the busy lines' Finnish times nearly gone.
    # The story's bookings (`_load_bookings`) already take places in some of them: only the rest is filled.
    upcoming_slots = Slot.objects.filter(
        starts_at__gt=now, starts_at__lt=_midnight(today + dt.timedelta(days=28))
    ).annotate(taken=Count("bookings", filter=Q(bookings__status=Booking.Status.CONFIRMED)))
    for slot in upcoming_slots.select_related("service_line").order_by("starts_at", "pk"):
        busy = slot.service_line.name_en in BUSY_LINES
        local_day = slot.starts_at.astimezone(SERVICE_TIMEZONE).date()
        share = {"fi": 0.95 if busy else 0.35, "sv": 0.3, "en": 0.5}[slot.language]
        share *= 1 - (local_day - today).days / 30
        if slot.service_line.name_en == FULL_DAY_LINE and slot.language == "fi" and local_day in (full_day, busy_day):
            share = 1.0  # the full day; and the busy day, every place but one (below)
            full_slots.add(slot.pk)
        drawn = sum(rng.random() < share for _place in range(slot.capacity))
        room = max(slot.capacity - slot.taken, 0)
        if local_day == busy_day and slot.pk in full_slots and not busy_place_left:
            room, busy_place_left = max(room - 1, 0), True  # the busy day keeps one place free
        places.append((slot, min(drawn, room)))

    bookings = []
    upcoming: dict[int, list[tuple[int, dt.datetime, dt.datetime]]] = {}
    for slot, booked in places:
        for _place in range(booked):
            customer = _free_customer(customers, upcoming, slot, rng) if slot.starts_at > now else rng.choice(customers)
            if customer is None:
                continue
            bookings.append(
                _statistics_booking(
                    slot=slot,
                    customer=customer,
                    now=now,
                    rng=rng,
                    partner=partner,
                    organisations=organisations,
                    may_cancel=slot.pk not in full_slots,
                )
            )
    last_week = [booking for booking in bookings if now - dt.timedelta(days=7) <= booking.confirmed_at < now]
    chosen = rng.sample(last_week, min(len(last_week), len(RARE_INTERPRETERS)))  # never fewer but on an empty demo
    for booking, language in zip(chosen, RARE_INTERPRETERS, strict=False):
        booking.interpreter_needed, booking.interpreter_language = True, language
    Booking.objects.bulk_create(bookings, batch_size=500)


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=SERVICE_TIMEZONE)


def _free_customer(customers: list[Customer], upcoming: dict, slot: Slot, rng: random.Random) -> Customer | None:
    """A customer who may book `slot` beside their upcoming demo bookings (one a line, none overlapping)."""
    start = rng.randrange(len(customers))
    for offset in range(len(customers)):
        customer = customers[(start + offset) % len(customers)]
        booked = upcoming.setdefault(customer.pk, [])
        if all(
            line != slot.service_line_id and (ends <= slot.starts_at or starts >= slot.ends_at)
            for line, starts, ends in booked
        ):
            booked.append((slot.service_line_id, slot.starts_at, slot.ends_at))
            return customer
    return None


def _statistics_booking(
    *,
    slot: Slot,
    customer: Customer,
    now: dt.datetime,
    rng: random.Random,
    partner: User,
    organisations: list,
    may_cancel: bool = True,
) -> Booking:
    channel = rng.choices(list(Booking.Channel), weights=[55, 30, 15])[0]
    by_partner = channel == Booking.Channel.PARTNER
    if slot.starts_at > now:  # made in the last three weeks
        confirmed_at = now - dt.timedelta(minutes=rng.randint(0, 21 * 24 * 60))
    else:
        confirmed_at = slot.starts_at - dt.timedelta(days=rng.randint(1, 14), minutes=rng.randint(0, 600))
    interpreter = ""
    if rng.random() < 0.09:
        codes, weights = zip(*STATISTICS_INTERPRETERS, strict=True)
        interpreter = rng.choices(codes, weights=weights)[0]
    cancelled_at = None
    if rng.random() < 0.08 and may_cancel:
        cancelled_at = confirmed_at + (min(slot.starts_at, now) - confirmed_at) * rng.random()
    organisation = rng.choices(
        organisations, weights=[5 if org.kind == "municipality" else 2 for org in organisations]
    )[0]
    return Booking(
        reference=new_reference(),
        slot=slot,
        customer=customer,
        status=Booking.Status.CANCELLED if cancelled_at else Booking.Status.CONFIRMED,
        channel=channel,
        organisation=organisation if by_partner else None,
        booked_by=partner if by_partner else None,
        interpreter_needed=bool(interpreter),
        interpreter_language=interpreter,
        contact_phone=customer.phone,
        confirmed_at=confirmed_at,
        cancelled_at=cancelled_at,
        cancellation_reason="Asiakas perui." if cancelled_at else "",
    )
