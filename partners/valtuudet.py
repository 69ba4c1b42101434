"""Suomi.fi e-Authorizations (Valtuudet), acting on behalf of an organisation (YPA): the client.

Flow (domain README §2.2): register a session for the identified person → send the browser to the organisation
selection → exchange the callback code (HTTP Basic) → read `organizationRoles` → unregister at logout. Every
service call carries the `X-AsiointivaltuudetAuthorization` checksum header. Failures become `ValtuudetError`;
messages never contain the identity code or a URL (the register path carries the code).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import requests
from django.conf import settings

from kelabooking import clock
from kelabooking.metrics import integration_call
from kelabooking.validators import has_control_characters


class ValtuudetError(Exception):
    """The mandate service failed or answered nonsense."""


@dataclass(frozen=True)
class Registration:
    session_id: str
    user_id: str


@dataclass(frozen=True)
class OrganisationRoles:
    business_id: str
    name: str
    complete: bool
    roles: tuple[str, ...]

    def grants(self, required: list[str]) -> bool:
        """The one rule (domain README §8.2): a complete answer with at least one of the required mandates."""
        return self.complete and bool(set(self.roles) & set(required))


def checksum_header(*, client_id: str, api_key: str, path_and_query: str, timestamp: str) -> str:
    """`<ClientID> <timestamp> <Base64(HMAC-SHA256(API key, "<path+query> <timestamp>"))>`."""
    digest = hmac.new(api_key.encode(), f"{path_and_query} {timestamp}".encode(), hashlib.sha256).digest()
    return f"{client_id} {timestamp} {base64.b64encode(digest).decode()}"


def _signed_headers(path_and_query: str) -> dict[str, str]:
    timestamp = clock.localnow().isoformat(timespec="seconds")
    return {
        "X-AsiointivaltuudetAuthorization": checksum_header(
            client_id=settings.VALTUUDET_CLIENT_ID,
            api_key=settings.VALTUUDET_API_KEY,
            path_and_query=path_and_query,
            timestamp=timestamp,
        ),
        "Accept": "application/json",
    }


def _call(method: str, path_and_query: str, *, what: str, **kwargs: Any) -> requests.Response:
    if not settings.VALTUUDET_BASE_URL:
        raise ValtuudetError("Valtuudet is not configured (VALTUUDET_BASE_URL)")
    with integration_call("valtuudet", what):  # latency and errors for the metrics
        try:
            response = requests.request(
                method, settings.VALTUUDET_BASE_URL + path_and_query, timeout=settings.VALTUUDET_TIMEOUT, **kwargs
            )
        except requests.RequestException as error:
            raise ValtuudetError(f"{what}: {error.__class__.__name__}") from None
        if response.status_code != 200:
            raise ValtuudetError(f"{what}: HTTP {response.status_code}")
    return response


def _json(response: requests.Response, *, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ValtuudetError(f"{what}: the answer was not JSON") from None


def _request_id() -> str:
    return uuid.uuid4().hex


def register_session(*, identity_code: str) -> Registration:
    path = (
        f"/service/ypa/user/register/{quote(settings.VALTUUDET_CLIENT_ID, safe='')}/{quote(identity_code, safe='')}"
        f"?{urlencode({'requestId': _request_id()})}"
    )
    body = _json(_call("GET", path, what="register", headers=_signed_headers(path)), what="register")
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("sessionId"), str)
        or not isinstance(body.get("userId"), str)
    ):
        raise ValtuudetError("register: the answer lacks sessionId or userId")
    return Registration(session_id=body["sessionId"], user_id=body["userId"])


def selection_url(*, registration: Registration, redirect_uri: str, language: str) -> str:
    query = urlencode(
        {
            "client_id": settings.VALTUUDET_CLIENT_ID,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "user": registration.user_id,
            "lang": language if language in {"fi", "sv", "en"} else "fi",
        }
    )
    return f"{settings.VALTUUDET_BASE_URL}/oauth/authorize?{query}"


def exchange_code(*, code: str, redirect_uri: str) -> str:
    path = "/oauth/token?" + urlencode({"code": code, "grant_type": "authorization_code", "redirect_uri": redirect_uri})
    response = _call("POST", path, what="token", auth=(settings.VALTUUDET_CLIENT_ID, settings.VALTUUDET_OAUTH_PASSWORD))
    body = _json(response, what="token")
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str) or not body["access_token"]:
        raise ValtuudetError("token: the answer lacks access_token")
    return body["access_token"]


def organisation_roles(*, session_id: str, access_token: str) -> OrganisationRoles:
    """The organisation the person chose and the roles they hold for it."""
    path = f"/service/ypa/api/organizationRoles/{quote(session_id, safe='')}?{urlencode({'requestId': _request_id()})}"
    headers = {**_signed_headers(path), "Authorization": f"Bearer {access_token}"}
    body = _json(_call("GET", path, what="organizationRoles", headers=headers), what="organizationRoles")
    try:
        first = body[0]
        roles = first.get("roles") or []
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise TypeError
        chosen = OrganisationRoles(
            business_id=str(first["identifier"]),
            name=str(first.get("name", "")),
            complete=first.get("complete") is True,
            roles=tuple(roles),
        )
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ValtuudetError("organizationRoles: the answer is not a list of organisations") from None
    if any(has_control_characters(text) for text in (chosen.business_id, chosen.name, *chosen.roles)):
        raise ValtuudetError("organizationRoles: the answer has control characters")
    return chosen


def unregister_session(*, session_id: str) -> None:
    path = f"/service/ypa/user/unregister/{quote(session_id, safe='')}?{urlencode({'requestId': _request_id()})}"
    _call("GET", path, what="unregister", headers=_signed_headers(path))
