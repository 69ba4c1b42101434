"""Django's database sessions, with a cheaper save of an existing session.

Django wraps every session save in a transaction (BEGIN, UPDATE, COMMIT: three round trips), because a new
session's INSERT may collide with another session's key. Saving an existing session is one UPDATE, which is atomic
by itself: this backend sends just that, written once (`kelabooking.sql`) rather than built by the ORM on every
partner page that changes the session. A session deleted meanwhile (logged out in another tab, expired and cleared)
raises UpdateError as Django's backend does, and SessionMiddleware answers it the same way.
"""

from __future__ import annotations

import functools

from django.contrib.sessions.backends import db
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.models import Session
from django.db import connection

from kelabooking import sql


@functools.cache
def _update_sql(vendor: str) -> str:
    data, expires, key = (sql.column(Session, name) for name in ("session_data", "expire_date", "session_key"))
    table = sql.quote(Session._meta.db_table)
    return f"UPDATE {table} SET {data} = %s, {expires} = %s WHERE {key} = %s"  # noqa: S608 - the model's own


class SessionStore(db.SessionStore):
    def save(self, must_create: bool = False) -> None:
        if self.session_key is None or must_create:
            super().save(must_create=must_create)
            return
        data = self.encode(self._get_session(no_load=False))
        expires = sql.prepare(Session, "expire_date", self.get_expiry_date())
        with connection.cursor() as cursor:
            cursor.execute(_update_sql(connection.vendor), [data, expires, self.session_key])
            if cursor.rowcount != 1:
                raise UpdateError
