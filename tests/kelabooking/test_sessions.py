"""The session backend: Django's database sessions, with one UPDATE to save an existing session."""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.models import Session

from kelabooking.sessions import SessionStore

pytestmark = pytest.mark.django_db


def test_session__new__is_created_and_can_be_read_back() -> None:
    store = SessionStore()
    store["step"] = "terms"
    store.save()

    assert SessionStore(session_key=store.session_key)["step"] == "terms"


def test_session__existing_changed__saved_in_one_statement(django_assert_num_queries) -> None:
    store = SessionStore()
    store["step"] = "terms"
    store.save()
    store = SessionStore(session_key=store.session_key)
    store["step"] = "customer"

    with django_assert_num_queries(1) as captured:
        store.save()

    assert captured.captured_queries[0]["sql"].startswith("UPDATE")
    assert SessionStore(session_key=store.session_key)["step"] == "customer"


def test_session__deleted_meanwhile__raises_update_error_and_is_not_recreated() -> None:
    store = SessionStore()
    store["step"] = "terms"
    store.save()
    store = SessionStore(session_key=store.session_key)
    store["step"] = "customer"
    Session.objects.filter(session_key=store.session_key).delete()

    with pytest.raises(UpdateError):
        store.save()

    assert not Session.objects.exists()
