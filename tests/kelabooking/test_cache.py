"""The Redis cache backend against a real Redis: Django's behaviour, with one client per connection pool."""

from __future__ import annotations

import pytest

from kelabooking.cache import RedisCache


@pytest.fixture
def cache(redis_url: str):
    backend = RedisCache(redis_url.rsplit("/", 1)[0] + "/14", {"KEY_PREFIX": "test-cache"})
    backend.clear()
    yield backend
    backend.clear()


@pytest.mark.redis
def test_cache__reuses_one_client_per_pool(cache) -> None:
    client = cache._cache.get_client(write=True)

    assert cache._cache.get_client(write=False) is client  # one server: reads and writes share its pool
    assert cache._cache.get_client(write=True) is client


@pytest.mark.redis
def test_cache__behaves_as_django_redis_cache(cache) -> None:
    assert cache.add("mark", 1, timeout=60) is True
    assert cache.add("mark", 2, timeout=60) is False  # SET NX: the first one stands
    assert cache.get("mark") == 1
    assert cache.incr("mark") == 2
    cache.delete("mark")
    assert cache.add("mark", 3, timeout=60) is True
    assert 0 < cache._cache.get_client().ttl(cache.make_and_validate_key("mark")) <= 60
