from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class KelabookingConfig(AppConfig):
    """The project's own app: the outbox, the retention job, the staff groups' sync, the start-up checks. The other
    apps fill its registries (message kinds, retention rules, staff groups, demo data) in their own `ready()`."""

    name = "kelabooking"
    verbose_name = _("Messages")

    def ready(self) -> None:
        from django.core import checks
        from django.core.signals import request_finished

        from kelabooking.checks import (
            check_demo_admin,
            check_identity_code_keys,
            check_message_backends,
            check_published_secrets,
            check_retention_limits,
            check_shared_cache,
            check_stored_key_ids,
        )
        from kelabooking.database import grant_app_role_after_migrate
        from kelabooking.logging import forget_request_id
        from kelabooking.metrics import multiprocess_dir_prepare
        from kelabooking.permissions import sync_staff_groups
        from kelabooking.retention import RETENTION_RULES, retention_rule_register

        checks.register(check_shared_cache)
        checks.register(check_identity_code_keys)
        checks.register(check_retention_limits)
        # Not a --deploy check: gunicorn's start and migrate refuse too, as for the two above.
        checks.register(check_message_backends)
        checks.register(check_published_secrets, checks.Tags.security)
        checks.register(check_demo_admin, checks.Tags.database)
        checks.register(check_stored_key_ids, checks.Tags.database)

        for rule in RETENTION_RULES:
            retention_rule_register(rule)

        request_finished.connect(forget_request_id, dispatch_uid="kelabooking.forget_request_id")
        # Any process with PROMETHEUS_MULTIPROC_DIR set (a command run in the web container, `migrate` loading the
        # demo) counts into it: it must exist. Only the servers' starts empty it (gunicorn.conf.py, celery.py).
        multiprocess_dir_prepare()

        # After every app's migrations: the groups refer to permissions of several apps.
        post_migrate.connect(sync_staff_groups, dispatch_uid="kelabooking.sync_staff_groups")
        # Once per migrate, after every app's tables exist.
        post_migrate.connect(grant_app_role_after_migrate, sender=self, dispatch_uid="kelabooking.grant_app_role")
