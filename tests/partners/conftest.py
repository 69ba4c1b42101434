"""The protocol-level OpenID provider that the relying-party tests sign in against."""

from __future__ import annotations

import pytest

from tests.partners.provider import FakeProvider, StaffProvider


@pytest.fixture
def op(httpserver, settings) -> FakeProvider:
    provider = FakeProvider(httpserver)
    provider.configure(settings)
    return provider


@pytest.fixture
def staff_op(httpserver, settings) -> StaffProvider:
    provider = StaffProvider(httpserver)
    provider.configure(settings)
    return provider
