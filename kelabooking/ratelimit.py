"""A fixed-window rate limit per client address, counted in the cache (Redis when REDIS_URL is set).

A limit fails open: when the cache cannot be reached, nothing is counted and nobody is limited (a warning is
logged), so that a Redis outage does not stop sign-ins or requests (kelabooking/settings.py, "Cache").
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

logger = logging.getLogger(__name__)


def client_address(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or the address the trusted proxies saw (NUM_PROXIES), as a plain IP address.
    A proxy may write the hop with a port (`203.0.113.9:443`, `[2001:db8::1]:443`); one that is no address at all
    (`unknown`) gives the proxy's own, REMOTE_ADDR, or "" (the audit trail then records none)."""
    proxies = settings.NUM_PROXIES
    if proxies:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if len(hops) >= proxies and (address := _ip_address(hops[-proxies])):
            return address
    return _ip_address(request.META.get("REMOTE_ADDR", ""))


def _ip_address(text: str) -> str:
    """`text` as an IP address without a port or brackets, or "" when it is none."""
    bracketed = text[1:].partition("]")[0] if text.startswith("[") else ""
    for candidate in (text, text.rpartition(":")[0] if text.count(":") == 1 else "", bracketed):
        try:
            address = ipaddress.ip_address(candidate)
        except ValueError:
            continue
        # A scoped IPv6 address (`fe80::1%eth0`) names an interface of the proxy's, which no database column takes.
        return "" if getattr(address, "scope_id", None) else str(address)
    return ""


def _key(request: HttpRequest, scope: str) -> str:
    digest = hashlib.sha256(f"{settings.SECRET_KEY}:{client_address(request)}".encode()).hexdigest()[:32]
    return f"ratelimit:{scope}:{digest}"


def rate_limit_reached(request: HttpRequest, *, scope: str, limit: int) -> bool:
    """Whether the client has already made `limit` counted attempts in the window (counts nothing)."""
    try:
        return int(cache.get(_key(request, scope)) or 0) >= limit
    except Exception:  # noqa: BLE001 - any cache failure: fail open
        logger.warning("rate limit %s not checked: the cache cannot be reached", scope, exc_info=True)
        return False


def rate_limit_count(request: HttpRequest, *, scope: str, window_seconds: int) -> int:
    """Count one attempt of the client's; how many it has made in the window, this one included (0 when the cache
    cannot be reached)."""
    key = _key(request, scope)
    try:
        cache.add(key, 0, timeout=window_seconds)
        try:
            return cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=window_seconds)
            return 1
    except Exception:  # noqa: BLE001 - any cache failure: fail open
        logger.warning("rate limit %s not counted: the cache cannot be reached", scope, exc_info=True)
        return 0


def rate_limit_exceeded(request: HttpRequest, *, scope: str, limit: int, window_seconds: int) -> bool:
    """Count one attempt and tell whether the client has gone past `limit` attempts in the window."""
    return rate_limit_count(request, scope=scope, window_seconds=window_seconds) > limit
