"""A fixed-window rate limit per client address, counted in the cache (Redis when REDIS_URL is set)."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or the address the trusted proxies saw (NUM_PROXIES)."""
    proxies = settings.NUM_PROXIES
    if proxies:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if len(hops) >= proxies:
            return hops[-proxies]
    return request.META.get("REMOTE_ADDR", "")


def _key(request: HttpRequest, scope: str) -> str:
    digest = hashlib.sha256(f"{settings.SECRET_KEY}:{client_address(request)}".encode()).hexdigest()[:32]
    return f"ratelimit:{scope}:{digest}"


def rate_limit_reached(request: HttpRequest, *, scope: str, limit: int) -> bool:
    """Whether the client has already made `limit` counted attempts in the window (counts nothing)."""
    return int(cache.get(_key(request, scope)) or 0) >= limit


def rate_limit_exceeded(request: HttpRequest, *, scope: str, limit: int, window_seconds: int) -> bool:
    """Count one attempt and tell whether the client has gone past `limit` attempts in the window."""
    key = _key(request, scope)
    cache.add(key, 0, timeout=window_seconds)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window_seconds)
        count = 1
    return count > limit
