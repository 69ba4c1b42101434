from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PartnersConfig(AppConfig):
    name = "partners"
    verbose_name = _("Partners")

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in
        from django.core import checks
        from django.db.models.signals import post_migrate

        from kelabooking.database import restrict_app_role
        from kelabooking.demo import demo_loader_register
        from kelabooking.fields import key_rotation_register
        from kelabooking.permissions import staff_group_register
        from kelabooking.retention import retention_rule_register, retention_run_finished
        from partners.database import audit_retention_set, audit_trail_restrictions
        from partners.demo import load_partners_demo
        from partners.metrics import SIGN_INS  # noqa: F401 - declared from the start: /metrics lists it before a sign-in
        from partners.middleware import staff_session_start
        from partners.permissions import STAFF_GROUPS
        from partners.retention import RETENTION_RULES, retention_run_audit
        from partners.rotation import KEY_ROTATIONS
        from partners.staff.checks import check_staff_sign_in

        restrict_app_role(audit_trail_restrictions)
        for rotation in KEY_ROTATIONS:
            key_rotation_register(rotation)
        post_migrate.connect(audit_retention_set, sender=self, dispatch_uid="partners.audit_retention_set")
        for rule in RETENTION_RULES:
            retention_rule_register(rule)
        retention_run_finished.connect(retention_run_audit, dispatch_uid="partners.retention_run_audit")
        for name, rights in STAFF_GROUPS.items():
            staff_group_register(name, rights)
        demo_loader_register(load_partners_demo)
        checks.register(check_staff_sign_in)
        user_logged_in.connect(staff_session_start, dispatch_uid="partners.staff_session_start")
