"""Django's database sessions, with a cheaper save of an existing session.

Django wraps every session save in a transaction (BEGIN, UPDATE, COMMIT: three round trips), because a new
session's INSERT may collide with another session's key. Saving an existing session is one UPDATE, which is atomic
by itself: this backend sends just that. A session deleted meanwhile (logged out in another tab, expired and
cleared) raises UpdateError as Django's backend does, and SessionMiddleware answers it the same way.
"""

from __future__ import annotations

from django.contrib.sessions.backends import db
from django.contrib.sessions.backends.base import UpdateError
from django.db import router


class SessionStore(db.SessionStore):
    def save(self, must_create: bool = False) -> None:
        if self.session_key is None or must_create:
            super().save(must_create=must_create)
            return
        model = self.model
        updated = (
            model.objects.using(router.db_for_write(model))
            .filter(session_key=self.session_key)
            .update(session_data=self.encode(self._get_session(no_load=False)), expire_date=self.get_expiry_date())
        )
        if not updated:
            raise UpdateError
