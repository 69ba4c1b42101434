"""FPA staff groups: each with exactly the permissions its work needs, kept in step on every migrate.

Each app declares its groups' rights in its `AppConfig.ready()` (`staff_group_register`, from the app's
`permissions.py`); docs/staff.md, "Staff groups and their rights", lists them: keep it in step
(tests/kelabooking/test_admin_groups.py).
"""

from __future__ import annotations

from typing import Any

from kelabooking.message_kinds import message_kinds

Rights = dict[tuple[str, str], set[str]]  # (app label, model name): the actions ("view", "add", "change", "delete")

# Every staff group and its rights, as the apps declared them, in the order they did.
GROUP_PERMISSIONS: dict[str, Rights] = {}


def staff_group_register(name: str, rights: Rights) -> None:
    """Declare a staff group with these rights; declared again (by another app, say), it gets those rights too."""
    group = GROUP_PERMISSIONS.setdefault(name, {})
    for model, actions in rights.items():
        group[model] = group.get(model, set()) | set(actions)


def message_kinds_for(user: Any) -> set[str]:
    """The kinds of message `user` may read in the outbox: every kind for an active superuser, otherwise those whose
    readers' permission the user holds (kelabooking/message_kinds.py). The recipients are customers' phone numbers and
    e-mail addresses (some with non-disclosure) and organisations' contact persons."""
    superuser = user.is_active and user.is_superuser
    return {kind.value for kind in message_kinds() if superuser or user.has_perm(kind.readers)}


def sync_staff_groups(**kwargs: Any) -> None:
    from django.contrib.auth.models import Group, Permission

    for name, permissions in GROUP_PERMISSIONS.items():
        group, _created = Group.objects.get_or_create(name=name)
        wanted = []
        for (app_label, model), actions in permissions.items():
            codenames = [f"{action}_{model}" for action in actions]
            wanted += list(
                Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames).values_list(
                    "pk", flat=True
                )
            )
        group.permissions.set(wanted)
