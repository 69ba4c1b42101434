"""Client for PRH's YTJ open data API v3: the company-form code list and companies by company form.

This module only speaks to PRH and turns its answers into plain values. Deciding what those values mean for the
registry is `registry.sync`'s job. Every failure (network, HTTP status, an answer of the wrong shape) becomes a
`PrhError`, so a caller has exactly one exception to handle and never acts on half an answer.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings
from django.core.exceptions import ValidationError

from kelabooking.metrics import integration_call
from registry.validators import normalise_business_id

PAGE_SIZE = 100  # PRH serves /companies in fixed pages of 100
COMPANY_FORM_CODE_LIST = "YRMU"
MUNICIPALITY_FORM_TEXT = "Kunta"
JOINT_MUNICIPAL_AUTHORITY_FORM_TEXT = "Kuntayhtymä"
# Name type codes (PRH code list TLAJI): 1 is the company's own name; the others are parallel and auxiliary names.
NAME_TYPE_COMPANY_NAME = "1"
LANGUAGE_CODE_SWEDISH = "2"

JSON_ACCEPT = "application/json"
# The code list is TSV, not JSON; asking for JSON only could earn a 406 from a strict server.
TEXT_ACCEPT = "text/plain, application/json;q=0.9, */*;q=0.1"


class PrhError(Exception):
    """PRH could not be reached or answered something this client cannot trust. The message says which."""


@dataclass(frozen=True)
class MunicipalFormCodes:
    """The YRMU codes PRH currently uses for the two company forms the registry syncs."""

    municipality: str
    joint_municipal_authority: str


@dataclass(frozen=True)
class PrhCompany:
    business_id: str
    name: str
    name_sv: str
    company_form: str
    registration_date: dt.date | None
    end_date: dt.date | None

    @property
    def ended(self) -> bool:
        return self.end_date is not None


def _get(path: str, *, params: Mapping[str, str | int], accept: str) -> requests.Response:
    url = f"{settings.PRH_API_URL.rstrip('/')}/{path}"
    with integration_call("prh", path):  # latency and errors for the metrics
        try:
            response = requests.get(
                url,
                params=params,
                headers={"Accept": accept},
                timeout=settings.PRH_TIMEOUT_SECONDS,
                allow_redirects=False,
            )
        except requests.RequestException as error:
            raise PrhError(f"PRH request to {url} failed: {error.__class__.__name__}: {error}") from error
        if response.status_code != 200:
            raise PrhError(f"PRH answered HTTP {response.status_code} to {response.url}")
    return response


def fetch_code_list(*, code: str, lang: str = "fi") -> dict[str, str]:
    """Return a PRH code list (`GET /description`) as {code: text}; the answer is TSV `code<TAB>text` lines."""
    response = _get("description", params={"code": code, "lang": lang}, accept=TEXT_ACCEPT)
    entries: dict[str, str] = {}
    for line in response.text.splitlines():
        if not line.strip():
            continue
        entry_code, tab, text = line.partition("\t")
        if not tab or not entry_code.strip():
            raise PrhError(f"PRH code list {code} has a line that is not `code<TAB>text`: {line[:80]!r}")
        entries[entry_code.strip()] = text.strip()
    if not entries:
        raise PrhError(f"PRH code list {code} was empty")
    return entries


def fetch_municipal_form_codes() -> MunicipalFormCodes:
    """Look up the YRMU codes whose Finnish text is "Kunta" and "Kuntayhtymä" (PRH's codes are never assumed)."""
    entries = fetch_code_list(code=COMPANY_FORM_CODE_LIST, lang="fi")
    return MunicipalFormCodes(
        municipality=_code_for(entries, MUNICIPALITY_FORM_TEXT),
        joint_municipal_authority=_code_for(entries, JOINT_MUNICIPAL_AUTHORITY_FORM_TEXT),
    )


def _code_for(entries: Mapping[str, str], text: str) -> str:
    matches = [code for code, entry_text in entries.items() if entry_text.casefold() == text.casefold()]
    if not matches:
        raise PrhError(f"PRH code list {COMPANY_FORM_CODE_LIST} has no company form called {text!r}")
    if len(matches) > 1:
        raise PrhError(f"PRH code list {COMPANY_FORM_CODE_LIST} has several codes called {text!r}: {matches}")
    return matches[0]


def fetch_companies(*, company_form: str, progress: Callable[[str], None] | None = None) -> list[PrhCompany]:
    """Every company PRH lists under one company form, each business id once.

    Paging stops at the page count `totalResults` gives, at an empty page, or when PRH hands back the first
    page again (it does that for a page past the end). Fewer distinct companies than `totalResults`, or more pages
    than `PRH_MAX_PAGES`, is an error: a partial list would make the sync deactivate organisations wrongly.
    """
    where = f"companies?companyForm={company_form}"
    first = _get_json("companies", params={"companyForm": company_form, "page": 1})
    total = _require(first, "totalResults", int, where=f"{where} page 1")
    if total < 0:
        raise PrhError(f"PRH {where} page 1: `totalResults` is negative ({total})")
    pages = math.ceil(total / PAGE_SIZE)
    if pages > settings.PRH_MAX_PAGES:
        raise PrhError(f"PRH lists {total} companies for {where}: {pages} pages exceeds PRH_MAX_PAGES")
    companies: dict[str, PrhCompany] = {}
    first_page_ids: set[str] | None = None
    data, page = first, 1
    while True:
        parsed = [parse_company(item) for item in _require(data, "companies", list, where=f"{where} page {page}")]
        page_ids = {company.business_id for company in parsed}
        if first_page_ids is None:
            first_page_ids = page_ids
        elif page_ids and page_ids == first_page_ids:
            break  # a page past the end: PRH answered with page 1 again
        for company in parsed:
            companies.setdefault(company.business_id, company)
        if progress is not None:
            progress(f"{where}: page {page}/{pages}, {len(companies)}/{total} companies")
        if not parsed or page >= pages:
            break
        page += 1
        data = _get_json("companies", params={"companyForm": company_form, "page": page})
    if len(companies) < total:
        raise PrhError(
            f"PRH said {total} companies match {where} but its pages held only {len(companies)} distinct ones; "
            "the list may have changed while paging"
        )
    return list(companies.values())


def _get_json(path: str, *, params: Mapping[str, str | int]) -> dict[str, Any]:
    response = _get(path, params=params, accept=JSON_ACCEPT)
    try:
        data = response.json()
    except ValueError as error:
        content_type = response.headers.get("Content-Type", "?")
        raise PrhError(f"PRH answer to {response.url} is not JSON (Content-Type {content_type})") from error
    if not isinstance(data, dict):
        raise PrhError(f"PRH answer to {response.url} is JSON but not an object")
    return data


def _require(data: Mapping[str, Any], key: str, kind: type, *, where: str) -> Any:
    if key not in data:
        raise PrhError(f"PRH {where}: `{key}` is missing")
    value = data[key]
    # bool is an int subclass; a boolean where PRH promises a number is still wrong
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise PrhError(f"PRH {where}: `{key}` should be {kind.__name__}, got {type(value).__name__}")
    return value


def _optional(data: Mapping[str, Any], key: str, kind: type, *, where: str) -> Any:
    if data.get(key) is None:
        return None
    return _require(data, key, kind, where=where)


def _date(data: Mapping[str, Any], key: str, *, where: str) -> dt.date | None:
    value = _optional(data, key, str, where=where)
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as error:
        raise PrhError(f"PRH {where}: `{key}` is not a yyyy-mm-dd date: {value!r}") from error


def parse_company(item: object) -> PrhCompany:
    """Turn one entry of `companies` into a `PrhCompany`, or raise `PrhError` saying what is wrong with it."""
    if not isinstance(item, dict):
        raise PrhError(f"PRH company entry should be an object, got {type(item).__name__}")
    business_id_block = _require(item, "businessId", dict, where="company")
    raw_business_id = _require(business_id_block, "value", str, where="company businessId")
    where = f"company {raw_business_id}"
    try:
        business_id = normalise_business_id(raw_business_id)
    except ValidationError as error:
        raise PrhError(f"PRH {where}: not a valid business id") from error
    names = _require(item, "names", list, where=where)
    name_entries = [_name_entry(entry, where=where) for entry in names]
    return PrhCompany(
        business_id=business_id,
        name=_current_name(name_entries, where=where),
        name_sv=_swedish_name(name_entries),
        company_form=_current_company_form(_optional(item, "companyForms", list, where=where) or [], where=where),
        registration_date=_date(item, "registrationDate", where=where),
        end_date=_date(item, "endDate", where=where),
    )


@dataclass(frozen=True)
class _Name:
    name: str
    type: str
    language_code: str | None
    registration_date: dt.date | None
    end_date: dt.date | None


def _name_entry(entry: object, *, where: str) -> _Name:
    if not isinstance(entry, dict):
        raise PrhError(f"PRH {where}: a `names` entry should be an object")
    return _Name(
        name=_require(entry, "name", str, where=f"{where} names").strip(),
        type=_require(entry, "type", str, where=f"{where} names"),
        language_code=_optional(entry, "languageCode", str, where=f"{where} names"),
        registration_date=_date(entry, "registrationDate", where=f"{where} names"),
        end_date=_date(entry, "endDate", where=f"{where} names"),
    )


def _latest(entries: list[_Name]) -> _Name:
    return max(entries, key=lambda entry: entry.registration_date or dt.date.min)


def _current_name(entries: list[_Name], *, where: str) -> str:
    """The company's own (type 1) name without an end date; a name with an end date is a former name.

    A company that has ended may have no open name left, so then the most recent type 1 name is used.
    """
    company_names = [entry for entry in entries if entry.type == NAME_TYPE_COMPANY_NAME and entry.name]
    if not company_names:
        raise PrhError(f"PRH {where}: no company name (names entry of type {NAME_TYPE_COMPANY_NAME})")
    current = [entry for entry in company_names if entry.end_date is None]
    return _latest(current or company_names).name


def _swedish_name(entries: list[_Name]) -> str:
    """A current name PRH explicitly marks as Swedish, else "".

    v3 puts no language on names, and a parallel name (type 2) may be Swedish or English, so guessing would put
    English into `name_sv`. Only an explicit `languageCode` "2" counts.
    """
    swedish = [
        entry
        for entry in entries
        if entry.language_code == LANGUAGE_CODE_SWEDISH and entry.end_date is None and entry.name
    ]
    return _latest(swedish).name if swedish else ""


def _current_company_form(forms: list[Any], *, where: str) -> str:
    current: list[tuple[dt.date, str]] = []
    for form in forms:
        if not isinstance(form, dict):
            raise PrhError(f"PRH {where}: a `companyForms` entry should be an object")
        code = _require(form, "type", str, where=f"{where} companyForms")
        if _date(form, "endDate", where=f"{where} companyForms") is None:
            current.append((_date(form, "registrationDate", where=f"{where} companyForms") or dt.date.min, code))
    return max(current)[1] if current else ""
