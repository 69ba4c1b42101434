"""The sandbox Suomi.fi Valtuudet: the "act on behalf of an organisation" (YPA) Web API and its selection page.

Paths are the real ones below the mount point (settings.VALTUUDET_BASE_URL is `/sandbox/valtuudet` in sandbox mode):
`/service/ypa/user/register/{clientId}/{hetu}`, `/oauth/authorize`, `/oauth/token`,
`/service/ypa/api/organizationRoles/{sessionId}` and `/service/ypa/user/unregister/{sessionId}`.

Every `/service/...` call must carry `X-AsiointivaltuudetAuthorization: <ClientID> <timestamp> <checksum>`, where the
checksum is Base64(HMAC-SHA256(API key, "<path and query> <timestamp>")) and the path is relative to the Valtuudet
base URL. This module checks it from the specification on its own, never with the client's code, so it is an
independent check of partners/valtuudet.py.

Sessions, codes and tokens live in Django's cache (no models). Sandbox leniencies: the redirect_uri must be
absolute, on the host that reached the sandbox, with the path `/valtuudet/callback/` (the real service pins a
registered HTTPS address); a `state` given to the selection page is handed back to the callback.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.cache import cache

from kelabooking import clock
from partners.sandbox.people import Person, person_for

HEADER = "X-AsiointivaltuudetAuthorization"
CALLBACK_PATH = "/valtuudet/callback/"
MAX_CLOCK_SKEW = dt.timedelta(minutes=5)
SESSION_LIFETIME_SECONDS = 60 * 60
CODE_LIFETIME_SECONDS = 5 * 60
TOKEN_LIFETIME_SECONDS = 599
GRANTED_SCOPE = "read write trust"
WRONG_CHECKSUM = "wrong checksum"


class ChecksumError(Exception):
    """The authorization header is missing, malformed or wrong; `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def checksum(*, api_key: str, path_and_query: str, timestamp: str) -> str:
    """Base64(HMAC-SHA256(key=API key, msg="<path and query> <timestamp>"))."""
    digest = hmac.new(api_key.encode(), f"{path_and_query} {timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_authorization_header(
    header: str | None, *, path_and_query: str, client_id: str, api_key: str, now: dt.datetime
) -> None:
    """Accept `<ClientID> <ISO 8601 timestamp> <checksum>` for this path, client and key, at most 5 minutes off."""
    if not header:
        raise ChecksumError(f"missing {HEADER} header")
    parts = header.split(" ")
    if len(parts) != 3 or not all(parts):
        raise ChecksumError(f"malformed {HEADER} header: expected '<ClientID> <timestamp> <checksum>'")
    sent_client_id, timestamp, sent_checksum = parts
    if not client_id or not secrets.compare_digest(sent_client_id, client_id):
        raise ChecksumError("unknown client id")
    try:
        sent_at = dt.datetime.fromisoformat(timestamp)
    except ValueError:
        raise ChecksumError("malformed timestamp: expected ISO 8601 with a UTC offset") from None
    if sent_at.tzinfo is None:
        raise ChecksumError("malformed timestamp: expected ISO 8601 with a UTC offset")
    if abs(now - sent_at) > MAX_CLOCK_SKEW:
        raise ChecksumError("timestamp more than 5 minutes off")
    expected = checksum(api_key=api_key, path_and_query=path_and_query, timestamp=timestamp)
    if not hmac.compare_digest(expected, sent_checksum):
        raise ChecksumError(WRONG_CHECKSUM)


def verify_request_header(header: str | None, *, paths: Sequence[str]) -> None:
    """verify_authorization_header with the configured client id and API key, now, for any spelling of the path.

    A server that does not keep the raw request line cannot tell `%2B` from `+` in the path, so the caller passes
    each spelling it can rebuild; all of them name the same resource.
    """
    for index, path_and_query in enumerate(paths):
        try:
            verify_authorization_header(
                header,
                path_and_query=path_and_query,
                client_id=settings.VALTUUDET_CLIENT_ID,
                api_key=settings.VALTUUDET_API_KEY,
                now=clock.now(),
            )
        except ChecksumError as error:
            if error.reason != WRONG_CHECKSUM or index == len(paths) - 1:
                raise
        else:
            return
    raise ChecksumError(WRONG_CHECKSUM)


# --- Sessions, codes and tokens -------------------------------------------------------------------------------


def _session_key(session_id: str) -> str:
    return f"sandbox:valtuudet:session:{session_id}"


def _user_key(user_id: str) -> str:
    return f"sandbox:valtuudet:user:{user_id}"


def _code_key(code: str) -> str:
    return "sandbox:valtuudet:code:" + hashlib.sha256(code.encode()).hexdigest()


def _token_key(access_token: str) -> str:
    return "sandbox:valtuudet:token:" + hashlib.sha256(access_token.encode()).hexdigest()


def session_register(*, identity_code: str) -> dict[str, str]:
    """Open a Web API session for a person: `{"sessionId", "userId"}`; the userId goes to the selection page."""
    session_id, user_id = uuid.uuid4().hex, uuid.uuid4().hex
    cache.set(_session_key(session_id), {"identity_code": identity_code, "user_id": user_id}, SESSION_LIFETIME_SECONDS)
    cache.set(_user_key(user_id), session_id, SESSION_LIFETIME_SECONDS)
    return {"sessionId": session_id, "userId": user_id}


def session_person(session_id: str) -> Person | None:
    data = cache.get(_session_key(session_id))
    return person_for(data["identity_code"]) if data else None


def session_for_user(user_id: str) -> str | None:
    session_id = cache.get(_user_key(user_id)) if user_id else None
    return session_id if session_id and cache.get(_session_key(session_id)) else None


def session_unregister(session_id: str) -> None:
    data = cache.get(_session_key(session_id))
    if data:
        cache.delete_many([_session_key(session_id), _user_key(data["user_id"])])


def code_issue(*, session_id: str, business_id: str, redirect_uri: str) -> str:
    code = secrets.token_urlsafe(24)
    data = {"session_id": session_id, "business_id": business_id, "redirect_uri": redirect_uri}
    cache.set(_code_key(code), data, CODE_LIFETIME_SECONDS)
    return code


def code_redeem(code: str, *, redirect_uri: str) -> dict[str, Any] | None:
    """A token response for a code (single use) issued for this redirect_uri; None when there is no such code."""
    key = _code_key(code)
    data = cache.get(key)
    if data is None or not cache.delete(key) or data["redirect_uri"] != redirect_uri:
        return None
    access_token, refresh_token = secrets.token_hex(16), secrets.token_hex(16)
    grant = {"session_id": data["session_id"], "business_id": data["business_id"]}
    cache.set(_token_key(access_token), grant, TOKEN_LIFETIME_SECONDS)
    return {
        "access_token": access_token,
        "token_type": "bearer",
        "refresh_token": refresh_token,
        "expires_in": TOKEN_LIFETIME_SECONDS,
        "scope": GRANTED_SCOPE,
    }


def organisation_roles(*, session_id: str, access_token: str) -> list[dict[str, Any]] | None:
    """The organisation chosen with this token, as the real API answers; None when the token is not the session's."""
    grant = cache.get(_token_key(access_token)) if access_token else None
    if not grant or grant["session_id"] != session_id:
        return None
    person = session_person(session_id)
    organisation = person.organisation(grant["business_id"]) if person else None
    if organisation is None:
        return None
    return [
        {
            "name": organisation.name,
            "identifier": organisation.business_id,
            "complete": organisation.complete,
            "roles": list(organisation.roles),
        }
    ]
