"""The session engine (SESSION_ENGINE): Django's database sessions, with the one rule a session write must not break.

A partner's login handles one customer (DESIGN.md §4 rule 6): once its session has locked a customer, only a new
identification unlocks it, and a new identification is a new session key (the Suomi.fi callback cycles it, also for
the same person, whom Django's login would keep on the old one; a logout deletes the row). Django writes a session
whole, as the request read it. So a request that read the session before another tab locked a customer (the
organisation choice waiting for Valtuudet, the terms, any page whose idle timer it touched) wrote it back without the
customer, and the login could open a second one. Now a write that would leave a signed-in session without its
customer reads the stored session first, under its row lock, and keeps the stored lock.
"""

from __future__ import annotations

from django.contrib.auth import SESSION_KEY as USER_KEY
from django.contrib.sessions.backends import db
from django.db import router, transaction
from django.utils import timezone

from partners.context import DRAFT_KEY
from partners.context import SESSION_KEY as ACTING_KEY


class SessionStore(db.SessionStore):
    def save(self, must_create: bool = False) -> None:
        if must_create or self.session_key is None or USER_KEY not in self:
            super().save(must_create=must_create)
            return
        if (self.get(ACTING_KEY) or {}).get("customer_id") is not None:
            super().save()
            return
        with transaction.atomic(using=router.db_for_write(self.model)):
            row = (
                self.model.objects.select_for_update()
                .filter(session_key=self.session_key, expire_date__gt=timezone.now())
                .first()
            )
            stored = self.decode(row.session_data) if row is not None else {}
            locked = stored.get(ACTING_KEY) or {}
            if locked.get("customer_id") is not None and stored.get(USER_KEY) == self[USER_KEY]:
                # The lock, and the customer's booking draft begun under it, are the stored session's.
                self[ACTING_KEY] = locked
                self.pop(DRAFT_KEY, None)
                if DRAFT_KEY in stored:
                    self[DRAFT_KEY] = stored[DRAFT_KEY]
            super().save()
