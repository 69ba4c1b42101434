"""Keep the registry's municipalities and joint municipal authorities in step with PRH (YTJ open data)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q

from kelabooking import clock
from kelabooking.jobs import job_lock
from registry import prh
from registry.models import Organisation, SyncRun
from registry.services import organisation_deactivate, organisation_reactivate

logger = logging.getLogger(__name__)

_NAME_MAX = Organisation._meta.get_field("name").max_length
_NAME_SV_MAX = Organisation._meta.get_field("name_sv").max_length
_FORM_MAX = Organisation._meta.get_field("prh_company_form").max_length
# Operator-facing text (command output, SyncRun.errors) is English, whatever language is active.
_PLURAL = {
    Organisation.Kind.MUNICIPALITY: "municipalities",
    Organisation.Kind.JOINT_MUNICIPAL_AUTHORITY: "joint municipal authorities",
}


@dataclass(frozen=True)
class _Listed:
    """One company PRH lists under a municipal company form, with what it means for the registry."""

    company: prh.PrhCompany
    kind: str
    current: bool  # not ended and still of a municipal company form


@dataclass
class _Changes:
    added: list[str]
    renamed: list[dict[str, str]]
    reactivated: list[str]
    deactivated: list[str]


# The nightly task's hard time limit (registry/tasks.py): a few pages from PRH, each with its own timeout.
SYNC_TIME_LIMIT_SECONDS = 11 * 60


def registry_sync_job_lock() -> AbstractContextManager[bool]:
    """The sync's lock (kelabooking/jobs.py), which the nightly task and `sync_registry` both take for a real run:
    one run at a time, whoever starts it."""
    return job_lock("registry-sync", lease=dt.timedelta(seconds=SYNC_TIME_LIMIT_SECONDS + 60))


def registry_sync(*, dry_run: bool = False, progress: Callable[[str], None] | None = None) -> SyncRun:
    """Bring the `prh_sync` organisations in line with PRH's municipalities and joint municipal authorities.

    Rules:
    - everything is fetched before anything is written, so a network error or an answer this project cannot trust
      aborts the run with nothing changed and nothing deactivated;
    - PRH listing no current municipality or no current joint authority is treated as an error, never as a reason
      to deactivate them all;
    - organisations added by request or by hand (`request`, `manual`) are never renamed, converted or deactivated;
    - a `prh_sync` organisation that has ended in PRH or is no longer listed is deactivated, never deleted.

    Every run is recorded as a `SyncRun`. With `dry_run` no organisation changes, but the run records what would
    have. On failure the run is saved as failed and the error (a `PrhError` for anything PRH-related) re-raised.

    Not `@transaction.atomic` as a whole, unlike other services: a failed run must stay recorded, and no
    transaction should be held open while waiting on PRH. The writes themselves happen in one transaction.
    """
    say = progress or _silent
    run = SyncRun.objects.create(dry_run=dry_run)
    try:
        listed = _fetch(say)
        with transaction.atomic():
            changes = _apply(listed, dry_run=dry_run)
            run.fetched = len(listed)
            run.added = changes.added
            run.renamed = changes.renamed
            run.reactivated = changes.reactivated
            run.deactivated = changes.deactivated
            run.status = SyncRun.Status.SUCCEEDED
            run.finished_at = clock.now()
            run.save()
    except Exception as error:
        run.status = SyncRun.Status.FAILED
        run.errors = str(error) if isinstance(error, prh.PrhError) else f"{error.__class__.__name__}: {error}"
        run.finished_at = clock.now()
        run.save(update_fields=["status", "errors", "finished_at"])
        logger.warning("registry sync %s failed: %s", run.pk, run.errors)
        raise
    logger.info(
        "registry sync %s%s: fetched %s, added %s, renamed %s, reactivated %s, deactivated %s",
        run.pk,
        " (dry run)" if dry_run else "",
        run.fetched,
        len(run.added),
        len(run.renamed),
        len(run.reactivated),
        len(run.deactivated),
    )
    return run


def _silent(message: str) -> None:
    pass


def _fetch(say: Callable[[str], None]) -> dict[str, _Listed]:
    say("Looking up PRH's company form codes for Kunta and Kuntayhtymä (code list YRMU)")
    codes = prh.fetch_municipal_form_codes()
    kinds = {
        codes.municipality: Organisation.Kind.MUNICIPALITY,
        codes.joint_municipal_authority: Organisation.Kind.JOINT_MUNICIPAL_AUTHORITY,
    }
    say(f"Kunta is code {codes.municipality}, Kuntayhtymä is code {codes.joint_municipal_authority}")
    listed: dict[str, _Listed] = {}
    for code, kind in kinds.items():
        companies = prh.fetch_companies(company_form=code, progress=say)
        current = 0
        for company in companies:
            # PRH may match a company on a former form; what counts is the form it has now.
            current_kind = kinds.get(company.company_form or code)
            entry = _Listed(
                company=company, kind=current_kind or kind, current=current_kind is not None and not company.ended
            )
            current += entry.current
            previous = listed.get(company.business_id)
            if previous is None or (entry.current and not previous.current):
                listed[company.business_id] = entry
        if not current:
            raise prh.PrhError(
                f"PRH lists no current {_PLURAL[kind]} (company form {code}); refusing to sync rather than "
                "deactivate them all"
            )
        say(f"{len(companies)} {_PLURAL[kind]} listed, {current} of them current")
    return listed


def _apply(listed: dict[str, _Listed], *, dry_run: bool) -> _Changes:
    changes = _Changes(added=[], renamed=[], reactivated=[], deactivated=[])
    organisations = {
        organisation.business_id: organisation
        for organisation in Organisation.objects.select_for_update()
        .filter(Q(source=Organisation.Source.PRH_SYNC) | Q(business_id__in=list(listed)))
        .order_by()
    }
    for business_id in sorted(listed):
        entry = listed[business_id]
        organisation = organisations.get(business_id)
        if organisation is None:
            if entry.current:
                changes.added.append(business_id)
                if not dry_run:
                    _create(entry)
        elif organisation.source != Organisation.Source.PRH_SYNC:
            continue  # added by request or by FPA: theirs to manage, whatever PRH says
        elif not entry.current:
            if organisation.is_active:
                changes.deactivated.append(business_id)
                if not dry_run:
                    organisation_deactivate(organisation=organisation, by_sync=True)
        else:
            _update(organisation, entry, changes, dry_run=dry_run)
    for business_id in sorted(organisations.keys() - listed.keys()):
        organisation = organisations[business_id]
        if organisation.source == Organisation.Source.PRH_SYNC and organisation.is_active:
            changes.deactivated.append(business_id)
            if not dry_run:
                organisation_deactivate(organisation=organisation, by_sync=True)
    changes.deactivated.sort()
    return changes


def _create(entry: _Listed) -> None:
    company = entry.company
    Organisation.objects.create(
        business_id=company.business_id,
        name=company.name[:_NAME_MAX],
        name_sv=company.name_sv[:_NAME_SV_MAX],
        kind=entry.kind,
        source=Organisation.Source.PRH_SYNC,
        prh_company_form=company.company_form[:_FORM_MAX],
    )


def _update(organisation: Organisation, entry: _Listed, changes: _Changes, *, dry_run: bool) -> None:
    company = entry.company
    name = company.name[:_NAME_MAX]
    fields: dict[str, str] = {}
    if organisation.name != name:
        changes.renamed.append({"business_id": organisation.business_id, "old": organisation.name, "new": name})
        fields["name"] = name
    # v3 seldom marks a name as Swedish; an unmarked answer must not wipe a Swedish name FPA typed in.
    if company.name_sv and organisation.name_sv != company.name_sv[:_NAME_SV_MAX]:
        fields["name_sv"] = company.name_sv[:_NAME_SV_MAX]
    if organisation.kind != entry.kind:
        fields["kind"] = entry.kind
    if company.company_form and organisation.prh_company_form != company.company_form[:_FORM_MAX]:
        fields["prh_company_form"] = company.company_form[:_FORM_MAX]
    if not organisation.is_active:
        changes.reactivated.append(organisation.business_id)
    if dry_run:
        return
    if fields:
        for field, value in fields.items():
            setattr(organisation, field, value)
        organisation.save(update_fields=[*fields, "updated_at"])
    if not organisation.is_active:
        organisation_reactivate(organisation=organisation)
