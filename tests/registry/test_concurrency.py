"""Simultaneous requests for one Y-tunnus from separate database connections: exactly one is recorded."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from registry.models import RegistrationRequest
from registry.services import RegistryError, registration_request_submit
from tests.factories import next_business_id

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_registration_request__concurrent_submits_for_one_business_id__exactly_one_pending() -> None:
    business_id = next_business_id()
    attempts = 8
    barrier = threading.Barrier(attempts)
    outcomes: list[str] = []

    def submit(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            registration_request_submit(
                kind=RegistrationRequest.Kind.ADD,
                business_id=business_id,
                organisation_name=f"Yhdistys {index}",
                justification="Rinnakkainen pyyntö.",
                contact_name="Testi",
                contact_email=f"testi{index}@example.org",
                contact_phone="",
                language="fi",
            )
            outcomes.append("saved")
        except RegistryError:
            outcomes.append("refused")
        finally:
            connection.close()  # each thread had its own connection

    threads = [threading.Thread(target=submit, args=(index,)) for index in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["refused"] * (attempts - 1) + ["saved"]
    assert RegistrationRequest.objects.filter(business_id=business_id).count() == 1
