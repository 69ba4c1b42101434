"""PRH sync of municipalities and joint municipal authorities, against a real HTTP server shaped like YTJ v3."""

from __future__ import annotations

import json
import math
import socket
import time
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from registry.models import Organisation, SyncRun
from registry.prh import PrhError, fetch_companies, fetch_municipal_form_codes
from registry.sync import registry_sync, registry_sync_job_lock
from registry.tasks import sync_registry_task
from tests.factories import OrganisationFactory, next_business_id

pytestmark = pytest.mark.django_db

BASE = "/opendata-ytj-api/v3"
# Deliberately not PRH's real codes (which nobody has confirmed): the client must read them from the code list.
KUNTA = "61"
KUNTAYHTYMA = "62"


def name_entries(name: str, *, former: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """PRH's `names`: the current type 1 name has no endDate; former names have one. Former names come first to
    show the order in the list is not what picks the current one."""
    entries: list[dict[str, Any]] = [
        {
            "name": old,
            "type": "1",
            "registrationDate": f"19{70 + index}-01-01",
            "endDate": f"19{71 + index}-01-01",
            "version": 2 + index,
            "source": "1",
        }
        for index, old in enumerate(former)
    ]
    entries.append({"name": name, "type": "1", "registrationDate": "2021-01-01", "version": 1, "source": "1"})
    return entries


def company(
    business_id: str,
    name: str,
    *,
    form: str = KUNTA,
    former: tuple[str, ...] = (),
    end_date: str | None = None,
    extra_names: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    form_text = {KUNTA: "Kunta", KUNTAYHTYMA: "Kuntayhtymä"}.get(form, "Muu")
    return {
        "businessId": {"value": business_id, "registrationDate": "1978-03-15", "source": "3"},
        "names": [*name_entries(name, former=former), *extra_names],
        "companyForms": [
            {
                "type": form,
                "descriptions": [{"languageCode": "1", "description": form_text}],
                "registrationDate": "1978-03-15",
                "endDate": None,
                "version": 1,
                "source": "1",
            }
        ],
        "mainBusinessLine": {"type": "84110", "typeCodeSet": "TOIMI4", "descriptions": []},
        "addresses": [],
        "registeredEntries": [],
        "companySituations": [],
        "registrationDate": "1978-03-15",
        "endDate": end_date,
        "status": "2",
        "tradeRegisterStatus": "0",
    }


def yrmu(kunta: str = KUNTA, kuntayhtyma: str = KUNTAYHTYMA) -> str:
    rows = [
        ("16", "Osakeyhtiö"),
        (kunta, "Kunta"),
        ("60", "Kunnallinen liikelaitos"),
        (kuntayhtyma, "Kuntayhtymä"),
        ("17", "Julkinen osakeyhtiö"),
    ]
    return "".join(f"{code}\t{text}\n" for code, text in rows)


class FakePrh:
    """PRH's v3 endpoints as this project uses them, including the page-past-the-end-is-page-1 behaviour."""

    def __init__(self, httpserver: HTTPServer) -> None:
        self.httpserver = httpserver
        self.code_list = yrmu()
        self.forms: dict[str, list[dict[str, Any]]] = {KUNTA: [], KUNTAYHTYMA: []}
        self.total_override: dict[str, int] = {}
        self.page_overrides: dict[tuple[str, int], Response] = {}
        httpserver.expect_request(f"{BASE}/description").respond_with_handler(self._description)
        httpserver.expect_request(f"{BASE}/companies").respond_with_handler(self._companies)

    def _description(self, request: Request) -> Response:
        if request.args.get("code") != "YRMU" or request.args.get("lang") != "fi":
            return Response("unknown code list", status=404)
        return Response(self.code_list, content_type="text/plain; charset=utf-8")

    def _companies(self, request: Request) -> Response:
        form = request.args.get("companyForm", "")
        page = int(request.args.get("page", "1"))
        if (form, page) in self.page_overrides:
            return self.page_overrides[(form, page)]
        companies = self.forms.get(form, [])
        if page < 1 or page > max(1, math.ceil(len(companies) / 100)):
            page = 1  # what PRH does for a page number out of range
        body = {
            "totalResults": self.total_override.get(form, len(companies)),
            "companies": companies[(page - 1) * 100 : page * 100],
        }
        return Response(json.dumps(body), content_type="application/json")

    def add(self, business_id: str, name: str, *, form: str = KUNTA, **kwargs: Any) -> str:
        self.forms[form].append(company(business_id, name, form=form, **kwargs))
        return business_id

    def pages_requested(self, form: str) -> list[int]:
        return [
            int(request.args.get("page", "0"))
            for request, _response in self.httpserver.log
            if request.path.endswith("/companies") and request.args.get("companyForm") == form
        ]


@pytest.fixture
def prh(httpserver: HTTPServer, settings) -> FakePrh:
    settings.PRH_API_URL = httpserver.url_for(BASE)
    return FakePrh(httpserver)


@pytest.fixture
def populated(prh: FakePrh) -> FakePrh:
    """One municipality and one joint authority, the least a sync accepts."""
    prh.add("0201256-6", "Helsingin kaupunki")
    prh.add(next_business_id(), "Helsingin ja Uudenmaan sairaanhoitopiirin kuntayhtymä", form=KUNTAYHTYMA)
    return prh


def prh_org(business_id: str, name: str, **kwargs: Any) -> Organisation:
    kwargs.setdefault("kind", Organisation.Kind.MUNICIPALITY)
    return OrganisationFactory(business_id=business_id, name=name, source=Organisation.Source.PRH_SYNC, **kwargs)


def snapshot() -> list[tuple[Any, ...]]:
    return list(
        Organisation.objects.order_by("business_id").values_list(
            "business_id", "name", "name_sv", "kind", "source", "is_active", "removed_at", "prh_company_form"
        )
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- adding -----------------------------------------------------------------------------------------------------


def test_registry__sync__adds_municipalities_and_joint_authorities_with_kind_and_source(prh: FakePrh) -> None:
    helsinki = prh.add("0201256-6", "Helsingin kaupunki", former=("Helsingin kaupunki -vanha",))
    espoo = prh.add(
        next_business_id(),
        "Espoon kaupunki",
        extra_names=({"name": "Esbo stad", "type": "2", "registrationDate": "2000-01-01", "version": 1},),
    )
    joint = prh.add(next_business_id(), "Keski-Uudenmaan sote-kuntayhtymä", form=KUNTAYHTYMA)

    run = registry_sync()

    rows = {o.business_id: o for o in Organisation.objects.all()}
    assert set(rows) == {helsinki, espoo, joint}
    assert rows[helsinki].name == "Helsingin kaupunki"  # the current name, not the former one listed first
    assert rows[helsinki].kind == Organisation.Kind.MUNICIPALITY
    assert rows[joint].kind == Organisation.Kind.JOINT_MUNICIPAL_AUTHORITY
    assert {o.source for o in rows.values()} == {Organisation.Source.PRH_SYNC}
    assert all(o.is_active for o in rows.values())
    assert rows[helsinki].prh_company_form == KUNTA
    assert rows[joint].prh_company_form == KUNTAYHTYMA
    # a parallel name carries no language in v3, so it is not taken as the Swedish name
    assert rows[espoo].name_sv == ""
    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.dry_run is False
    assert run.finished_at is not None
    assert run.fetched == 3
    assert run.added == sorted([helsinki, espoo, joint])
    assert run.renamed == run.reactivated == run.deactivated == []


def test_registry__sync__takes_swedish_name_only_when_marked_swedish(populated: FakePrh) -> None:
    vaasa = populated.add(
        next_business_id(),
        "Vaasan kaupunki",
        extra_names=(
            {"name": "City of Vaasa", "type": "2", "registrationDate": "2000-01-01"},
            {"name": "Vasa stad", "type": "2", "languageCode": "2", "registrationDate": "2000-01-01"},
        ),
    )

    registry_sync()

    assert Organisation.objects.get(business_id=vaasa).name_sv == "Vasa stad"


def test_registry__sync__second_run_changes_nothing(populated: FakePrh) -> None:
    registry_sync()
    before = snapshot()

    run = registry_sync()

    assert snapshot() == before
    assert run.added == run.renamed == run.reactivated == run.deactivated == []


def test_registry__sync__normalises_business_ids_from_prh(prh: FakePrh) -> None:
    prh.add("0201256 6", "Helsingin kaupunki")
    prh.add(next_business_id(), "Kuntayhtymä", form=KUNTAYHTYMA)

    registry_sync()

    assert Organisation.objects.filter(business_id="0201256-6").exists()


# --- paging -----------------------------------------------------------------------------------------------------


def test_prh__fetch_companies__stops_at_last_page_although_next_page_would_repeat_page_one(prh: FakePrh) -> None:
    ids = [prh.add(next_business_id(), f"Kunta {n}") for n in range(150)]
    prh.add(next_business_id(), "Kuntayhtymä", form=KUNTAYHTYMA)

    run = registry_sync()

    assert prh.pages_requested(KUNTA) == [1, 2]
    assert Organisation.objects.filter(kind=Organisation.Kind.MUNICIPALITY).count() == 150
    assert len(run.added) == len(set(run.added)) == 151
    assert set(ids) <= set(run.added)


def test_prh__fetch_companies__ends_loop_and_fails_when_prh_repeats_page_one(prh: FakePrh) -> None:
    """PRH overstating totalResults: page 3 comes back as page 1. The loop must end there, count nothing twice,
    and refuse a list that is shorter than PRH said (a partial list would deactivate organisations)."""
    for n in range(150):
        prh.add(next_business_id(), f"Kunta {n}")
    prh.total_override[KUNTA] = 350  # four pages promised, two exist

    with pytest.raises(PrhError, match="only 150 distinct"):
        fetch_companies(company_form=KUNTA)

    assert prh.pages_requested(KUNTA) == [1, 2, 3]


def test_prh__fetch_companies__deduplicates_and_parses_across_pages(prh: FakePrh) -> None:
    ids = [prh.add(next_business_id(), f"Kunta {n}") for n in range(120)]

    companies = fetch_companies(company_form=KUNTA)

    assert [c.business_id for c in companies] == ids
    assert companies[0].name == "Kunta 0"
    assert companies[0].company_form == KUNTA
    assert companies[0].end_date is None
    assert companies[0].ended is False
    assert str(companies[0].registration_date) == "1978-03-15"


def test_prh__fetch_companies__takes_the_type_1_name_without_end_date_as_current(prh: FakePrh) -> None:
    listed = company(next_business_id(), "ignored")
    listed["names"] = [
        {"name": "Nykyinen nimi", "type": "1", "version": 1},  # PRH does not always give a registrationDate
        {"name": "Entinen nimi", "type": "1", "registrationDate": "2010-01-01", "endDate": "2015-01-01"},
        {"name": "Aputoiminimi", "type": "3", "registrationDate": "2020-01-01"},
    ]
    prh.forms[KUNTA] = [listed]

    [parsed] = fetch_companies(company_form=KUNTA)

    assert parsed.name == "Nykyinen nimi"
    assert parsed.name_sv == ""


def test_prh__fetch_companies__refuses_more_pages_than_the_cap(prh: FakePrh, settings) -> None:
    settings.PRH_MAX_PAGES = 1
    for n in range(101):
        prh.add(next_business_id(), f"Kunta {n}")

    with pytest.raises(PrhError, match="PRH_MAX_PAGES"):
        fetch_companies(company_form=KUNTA)
    assert prh.pages_requested(KUNTA) == [1]


def test_prh__requests__ask_for_json_from_companies(populated: FakePrh) -> None:
    registry_sync()

    accepts = {
        request.headers.get("Accept") for request, _ in populated.httpserver.log if request.path.endswith("/companies")
    }
    assert accepts == {"application/json"}


# --- code list --------------------------------------------------------------------------------------------------


def test_prh__form_codes__read_from_code_list_not_hard_coded(prh: FakePrh) -> None:
    prh.code_list = yrmu(kunta="907", kuntayhtyma="908") + "\n"
    prh.forms = {"907": [], "908": []}
    municipality, joint = next_business_id(), next_business_id()
    prh.forms["907"].append(company(municipality, "Oulun kaupunki", form="907"))
    prh.forms["908"].append(company(joint, "Pohteen kuntayhtymä", form="908"))

    registry_sync()

    forms_asked = {request.args.get("companyForm") for request, _ in prh.httpserver.log if "companies" in request.path}
    assert forms_asked == {"907", "908"}
    assert Organisation.objects.get(business_id=municipality).kind == Organisation.Kind.MUNICIPALITY
    assert Organisation.objects.get(business_id=joint).kind == Organisation.Kind.JOINT_MUNICIPAL_AUTHORITY
    assert Organisation.objects.get(business_id=joint).prh_company_form == "908"


def test_prh__form_codes__match_trimmed_and_case_insensitive_but_exact(prh: FakePrh) -> None:
    prh.code_list = "16\tOsakeyhtiö\n70\tKuntayhtymän liikelaitos\n71\t kuntayhtymä \n72\tKUNTA\n73\tKunnallinen\n"

    codes = fetch_municipal_form_codes()

    assert (codes.municipality, codes.joint_municipal_authority) == ("72", "71")


def test_registry__sync__fails_when_code_list_lacks_kuntayhtyma(prh: FakePrh) -> None:
    prh.code_list = "16\tOsakeyhtiö\n61\tKunta\n"
    existing = prh_org(next_business_id(), "Vanha kuntayhtymä", kind=Organisation.Kind.JOINT_MUNICIPAL_AUTHORITY)

    with pytest.raises(PrhError, match="Kuntayhtymä"):
        registry_sync()

    existing.refresh_from_db()
    assert existing.is_active
    assert SyncRun.objects.get().status == SyncRun.Status.FAILED


# --- renaming, ending, vanishing, reactivating -------------------------------------------------------------------


def test_registry__sync__renames_prh_organisation_and_records_old_and_new(populated: FakePrh) -> None:
    business_id = next_business_id()
    prh_org(business_id, "Jämsän kaupunki")
    populated.add(business_id, "Jämsän kaupunki (uusi)", former=("Jämsän kaupunki",))

    run = registry_sync()

    organisation = Organisation.objects.get(business_id=business_id)
    assert organisation.name == "Jämsän kaupunki (uusi)"
    assert organisation.is_active
    assert run.renamed == [{"business_id": business_id, "old": "Jämsän kaupunki", "new": "Jämsän kaupunki (uusi)"}]
    assert business_id not in run.added


def test_registry__sync__deactivates_prh_organisation_that_has_ended(populated: FakePrh) -> None:
    merged = next_business_id()
    prh_org(merged, "Yhdistyneen kunnan edeltäjä")
    populated.add(merged, "Yhdistyneen kunnan edeltäjä", end_date="2025-01-01")
    never_seen = populated.add(next_business_id(), "Lakannut kunta", end_date="2021-01-01")

    run = registry_sync()

    organisation = Organisation.objects.get(business_id=merged)
    assert not organisation.is_active
    assert organisation.removed_at is not None
    assert run.deactivated == [merged]
    assert not Organisation.objects.filter(business_id=never_seen).exists()  # an ended one is never added


def test_registry__sync__deactivates_organisation_whose_current_form_is_no_longer_municipal(
    populated: FakePrh,
) -> None:
    business_id = next_business_id()
    prh_org(business_id, "Entinen kunta Oy")
    listed = company(business_id, "Entinen kunta Oy")
    listed["companyForms"] = [
        {"type": KUNTA, "registrationDate": "1978-03-15", "endDate": "2024-12-31"},
        {"type": "16", "registrationDate": "2025-01-01", "endDate": None},
    ]
    populated.forms[KUNTA].append(listed)

    run = registry_sync()

    assert not Organisation.objects.get(business_id=business_id).is_active
    assert run.deactivated == [business_id]


def test_registry__sync__deactivates_prh_organisation_that_vanished(populated: FakePrh) -> None:
    vanished = prh_org(next_business_id(), "Kadonnut kunta")
    already_inactive = OrganisationFactory.deactivated(
        business_id=next_business_id(), name="Jo poistettu", source=Organisation.Source.PRH_SYNC
    )

    run = registry_sync()

    vanished.refresh_from_db()
    assert not vanished.is_active
    assert vanished.removed_at is not None
    assert run.deactivated == [vanished.business_id]  # the one already inactive is not counted again
    already_inactive.refresh_from_db()
    assert not already_inactive.is_active


def test_registry__sync__reactivates_deactivated_prh_organisation_listed_again(populated: FakePrh) -> None:
    organisation = OrganisationFactory.deactivated(
        business_id=next_business_id(),
        name="Palannut kunta",
        source=Organisation.Source.PRH_SYNC,
        kind=Organisation.Kind.MUNICIPALITY,
    )
    populated.add(organisation.business_id, "Palannut kunta")

    run = registry_sync()

    organisation.refresh_from_db()
    assert organisation.is_active
    assert organisation.removed_at is None
    assert run.reactivated == [organisation.business_id]
    assert run.renamed == []


def test_registry__sync__keeps_a_municipality_fpa_deactivated_deactivated(populated: FakePrh) -> None:
    """FPA's decision outlives the nightly sync, although PRH still lists the municipality."""
    from registry.services import organisation_deactivate

    organisation = prh_org(next_business_id(), "Poistettu kunta")
    populated.add(organisation.business_id, "Poistettu kunta")
    organisation_deactivate(organisation=organisation)

    run = registry_sync()

    organisation.refresh_from_db()
    assert (organisation.is_active, organisation.source) == (False, Organisation.Source.MANUAL)
    assert run.reactivated == []


@pytest.mark.parametrize("source", [Organisation.Source.REQUEST, Organisation.Source.MANUAL])
def test_registry__sync__never_touches_request_or_manual_organisations(populated: FakePrh, source: str) -> None:
    listed_renamed = OrganisationFactory(business_id=next_business_id(), name="Oma nimi", source=source)
    populated.add(listed_renamed.business_id, "PRH:n nimi")
    listed_ended = OrganisationFactory(business_id=next_business_id(), name="Päättynyt", source=source)
    populated.add(listed_ended.business_id, "Päättynyt", end_date="2024-01-01")
    listed_inactive = OrganisationFactory.deactivated(business_id=next_business_id(), name="Pois", source=source)
    populated.add(listed_inactive.business_id, "Pois")
    missing = OrganisationFactory(business_id=next_business_id(), name="Ei PRH:ssa", source=source)
    before = snapshot()

    run = registry_sync()

    assert [row for row in snapshot() if row[4] == source] == before
    for organisation in (listed_renamed, listed_ended, listed_inactive, missing):
        stored = Organisation.objects.get(pk=organisation.pk)
        assert (stored.name, stored.source, stored.kind, stored.is_active) == (
            organisation.name,
            source,
            Organisation.Kind.OTHER,
            organisation.is_active,
        )
        assert organisation.business_id not in run.added + run.reactivated + run.deactivated
    assert run.renamed == []


# --- dry run ----------------------------------------------------------------------------------------------------


def test_registry__sync_dry_run__writes_no_organisation_but_records_what_would_change(populated: FakePrh) -> None:
    renamed = prh_org(next_business_id(), "Vanha nimi")
    populated.add(renamed.business_id, "Uusi nimi")
    vanished = prh_org(next_business_id(), "Kadonnut")
    returning = OrganisationFactory.deactivated(
        business_id=next_business_id(), name="Palaava", source=Organisation.Source.PRH_SYNC
    )
    populated.add(returning.business_id, "Palaava")
    ended = prh_org(next_business_id(), "Päättynyt")
    populated.add(ended.business_id, "Päättynyt", end_date="2025-01-01")
    before = snapshot()

    run = registry_sync(dry_run=True)

    assert snapshot() == before
    assert run.dry_run is True
    assert run.status == SyncRun.Status.SUCCEEDED
    assert len(run.added) == 2  # the two organisations the populated fixture lists
    assert run.renamed == [{"business_id": renamed.business_id, "old": "Vanha nimi", "new": "Uusi nimi"}]
    assert run.deactivated == sorted([vanished.business_id, ended.business_id])
    assert run.reactivated == [returning.business_id]
    assert SyncRun.objects.get(pk=run.pk).added == run.added


# --- failures: nothing written, nothing deactivated ---------------------------------------------------------------


def assert_failed_and_untouched(existing: Organisation, before: list[tuple[Any, ...]], *, error: str) -> None:
    assert snapshot() == before
    existing.refresh_from_db()
    assert existing.is_active
    run = SyncRun.objects.get()
    assert run.status == SyncRun.Status.FAILED
    assert run.finished_at is not None
    assert error in run.errors
    assert run.added == run.deactivated == []


def test_registry__sync__http_500_aborts_without_writing(populated: FakePrh) -> None:
    existing = prh_org(next_business_id(), "Olemassa oleva kunta")  # would be deactivated as vanished
    before = snapshot()
    # municipalities come back fine; the joint authorities fail afterwards
    populated.page_overrides[(KUNTAYHTYMA, 1)] = Response("Internal Server Error", status=500)

    with pytest.raises(PrhError, match="HTTP 500"):
        registry_sync()

    assert_failed_and_untouched(existing, before, error="HTTP 500")


def test_registry__sync__closed_port_aborts_without_writing(settings) -> None:
    existing = prh_org(next_business_id(), "Olemassa oleva kunta")
    before = snapshot()
    settings.PRH_API_URL = f"http://127.0.0.1:{closed_port()}{BASE}"

    with pytest.raises(PrhError, match="request to .* failed"):
        registry_sync()

    assert_failed_and_untouched(existing, before, error="ConnectionError")


def test_registry__sync__slow_prh_times_out_without_writing(populated: FakePrh, settings) -> None:
    existing = prh_org(next_business_id(), "Olemassa oleva kunta")
    before = snapshot()
    settings.PRH_TIMEOUT_SECONDS = 0.2

    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response(json.dumps({"totalResults": 0, "companies": []}), content_type="application/json")

    populated.httpserver.clear()
    populated.httpserver.expect_request(f"{BASE}/description").respond_with_handler(populated._description)
    populated.httpserver.expect_request(f"{BASE}/companies").respond_with_handler(slow)

    with pytest.raises(PrhError, match="Timeout"):
        registry_sync()

    assert_failed_and_untouched(existing, before, error="Timeout")


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (Response("<html><body>Huoltokatko</body></html>", content_type="text/html"), "not JSON"),
        (Response(json.dumps({"companies": []}), content_type="application/json"), "`totalResults` is missing"),
        (Response(json.dumps({"totalResults": 1}), content_type="application/json"), "`companies` is missing"),
        (Response(json.dumps([1, 2]), content_type="application/json"), "not an object"),
        (
            Response(json.dumps({"totalResults": "1", "companies": []}), content_type="application/json"),
            "`totalResults` should be int",
        ),
    ],
    ids=["html", "no-total", "no-companies", "array", "total-as-string"],
)
def test_registry__sync__malformed_page_aborts_without_writing(
    populated: FakePrh, response: Response, error: str
) -> None:
    existing = prh_org(next_business_id(), "Olemassa oleva kunta")
    before = snapshot()
    populated.page_overrides[(KUNTAYHTYMA, 1)] = response

    with pytest.raises(PrhError, match=error):
        registry_sync()

    assert_failed_and_untouched(existing, before, error=error)


@pytest.mark.parametrize(
    ("mangle", "error"),
    [
        (lambda c: c.pop("names"), "`names` is missing"),
        (lambda c: c.pop("businessId"), "`businessId` is missing"),
        (lambda c: c["businessId"].update(value="0201256-7"), "not a valid business id"),
        (lambda c: c.update(names=[{"name": "Apunimi", "type": "3"}]), "no company name"),
        (lambda c: c.update(endDate="31.12.2024"), "not a yyyy-mm-dd date"),
        (lambda c: c["names"][0].update(type=1), "`type` should be str"),
    ],
    ids=["no-names", "no-business-id", "bad-checksum", "no-type-1-name", "bad-date", "numeric-name-type"],
)
def test_registry__sync__malformed_company_aborts_without_writing(populated: FakePrh, mangle: Any, error: str) -> None:
    existing = prh_org(next_business_id(), "Olemassa oleva kunta")
    before = snapshot()
    mangle(populated.forms[KUNTA][0])

    with pytest.raises(PrhError, match=error):
        registry_sync()

    assert_failed_and_untouched(existing, before, error=error)


@pytest.mark.parametrize("form", [KUNTA, KUNTAYHTYMA])
def test_registry__sync__zero_results_is_an_error_not_a_mass_deactivation(populated: FakePrh, form: str) -> None:
    existing = prh_org(next_business_id(), "Olemassa oleva kunta")
    before = snapshot()
    populated.forms[form] = []

    with pytest.raises(PrhError, match="lists no current"):
        registry_sync()

    assert_failed_and_untouched(existing, before, error="refusing to sync")


def test_registry__sync__only_ended_municipalities_is_an_error(populated: FakePrh) -> None:
    existing = prh_org(next_business_id(), "Olemassa oleva kunta")
    before = snapshot()
    populated.forms[KUNTA] = [company(next_business_id(), "Lakannut", end_date="2020-01-01")]

    with pytest.raises(PrhError, match="no current municipalities"):
        registry_sync()

    assert_failed_and_untouched(existing, before, error="no current municipalities")


# --- the command and the task -----------------------------------------------------------------------------------


def test_sync_registry_command__prints_progress_and_summary(populated: FakePrh) -> None:
    prh_org(next_business_id(), "Kadonnut")
    out = StringIO()

    call_command("sync_registry", stdout=out)

    output = out.getvalue()
    assert "Kunta is code 61, Kuntayhtymä is code 62" in output
    assert "Fetched 2: added 2, renamed 0, reactivated 0, deactivated 1." in output
    assert "Dry run" not in output
    assert Organisation.objects.filter(source=Organisation.Source.PRH_SYNC, is_active=True).count() == 2


def test_sync_registry_command__dry_run_writes_nothing(populated: FakePrh) -> None:
    out = StringIO()

    call_command("sync_registry", "--dry-run", "--verbosity=2", stdout=out)

    assert "Dry run, nothing was written. Fetched 2: added 2" in out.getvalue()
    assert "  added 0201256-6" in out.getvalue()
    assert not Organisation.objects.exists()
    assert SyncRun.objects.get().dry_run is True


def test_sync_registry_command__failure_raises_command_error(populated: FakePrh) -> None:
    populated.page_overrides[(KUNTA, 1)] = Response("Service Unavailable", status=503)

    with pytest.raises(CommandError, match="Registry sync failed, nothing was changed: PRH answered HTTP 503"):
        call_command("sync_registry", stdout=StringIO())

    assert SyncRun.objects.get().status == SyncRun.Status.FAILED


def test_sync_registry_command__while_the_nightly_sync_runs__refuses_and_changes_nothing(populated: FakePrh) -> None:
    """The nightly task took the job's lock and the operator's command did not: both could sync at once."""
    with registry_sync_job_lock() as holds:  # the nightly run, holding the job
        assert holds
        with pytest.raises(CommandError, match="Another registry sync is in progress"):
            call_command("sync_registry", stdout=StringIO())
        call_command("sync_registry", "--dry-run", stdout=StringIO())  # a dry run changes nothing: it may run

    assert not Organisation.objects.exists()
    assert list(SyncRun.objects.values_list("dry_run", flat=True)) == [True]
    call_command("sync_registry", stdout=StringIO())  # the lock is free again
    assert Organisation.objects.filter(source=Organisation.Source.PRH_SYNC).count() == 2


def test_sync_registry_task__is_registered_under_the_beat_name_and_runs_the_sync(populated: FakePrh) -> None:
    from django.conf import settings

    assert sync_registry_task.name == settings.CELERY_BEAT_SCHEDULE["sync-registry-nightly"]["task"]

    result = sync_registry_task.apply()

    run = SyncRun.objects.get()
    assert result.get() == run.pk
    assert run.status == SyncRun.Status.SUCCEEDED
    assert Organisation.objects.count() == 2
