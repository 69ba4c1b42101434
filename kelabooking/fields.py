"""Model fields for personal identity codes at rest (kelabooking/crypto.py): the encrypted value and its keyed index.

Each stored value starts with the id of the key that made it (`<key id>:`). Every column of these fields has an index
on that key id (`key_id_index` in the model's Meta), so the ids a column holds are read with one index probe per id:
the start-up check, the rotation command and the refusal of a new row below all ask `unconfigured_keys`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db import models, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.functions import Left

from kelabooking import crypto


class EncryptedIdentityCodeField(models.TextField):
    """A canonical identity code, stored as `<key id>:<Fernet token>` and read back in clear.

    Encryption is randomised, so the column cannot be searched: every look-up other than `isnull` is refused here
    (use the model's keyed index, an `IdentityCodeDigestField`), instead of silently never matching.
    """

    description = "A personal identity code, encrypted"
    key_setting = "IDENTITY_CODE_ENCRYPTION_KEYS"

    def configured_key_ids(self) -> list[str]:
        return crypto.encryption_key_ids()

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        return crypto.decrypt(value) if value else value

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return crypto.encrypt(value) if value else value

    def get_lookup(self, lookup_name: str) -> Any:
        if lookup_name != "isnull":
            return None
        return super().get_lookup(lookup_name)


class IdentityCodeIndexField(models.CharField):
    """An identity code's keyed index as `crypto.digest` makes it (`<key id>:<HMAC>`), e.g. a copy kept beside an
    audit event; found by filtering on `crypto.digests(code)`."""

    description = "The keyed index of a personal identity code"
    key_setting = "IDENTITY_CODE_HMAC_KEYS"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 64)
        super().__init__(*args, **kwargs)

    def configured_key_ids(self) -> list[str]:
        return crypto.hmac_key_ids()

    def deconstruct(self) -> tuple[str, str, list[Any], dict[str, Any]]:
        name, path, args, kwargs = super().deconstruct()
        if kwargs.get("max_length") == 64:
            del kwargs["max_length"]
        return name, path, args, kwargs


class IdentityCodeDigestField(IdentityCodeIndexField):
    """The keyed index (HMAC-SHA256, newest key) of the identity code held in the field named `source`, written on
    every save and bulk insert; a look-up filters on `crypto.digests(code)` to find rows under any configured key.

    A new row is refused while the column holds an index made with a key this process does not have: the person may
    be stored under it, and a look-up cannot find them, so a second row for one person would follow.
    """

    def __init__(self, *args: Any, source: str = "identity_code", **kwargs: Any) -> None:
        self.source = source
        kwargs["editable"] = False
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> tuple[str, str, list[Any], dict[str, Any]]:
        name, path, args, kwargs = super().deconstruct()
        del kwargs["editable"]
        if self.source != "identity_code":
            kwargs["source"] = self.source
        return name, path, args, kwargs

    def pre_save(self, model_instance: models.Model, add: bool) -> str | None:
        code = getattr(model_instance, self.source)
        if code and add:
            model = type(model_instance)
            for problem in unconfigured_keys(model, self, using=router.db_for_write(model)):
                raise problem
        value = crypto.digest(code) if code else (None if self.null else "")
        setattr(model_instance, self.attname, value)
        return value


KeyedField = EncryptedIdentityCodeField | IdentityCodeIndexField


def key_id_index(field_name: str, *, name: str) -> models.Index:
    """The index on the key id a column's values start with (for `stored_key_ids`)."""
    return models.Index(Left(field_name, crypto.KEY_ID_LENGTH), name=name)


def key_id_of(field_name: str) -> Left:
    """The key id a column's stored value starts with, as text (not decrypted): what `key_id_index` indexes."""
    return Left(field_name, crypto.KEY_ID_LENGTH, output_field=models.CharField())


def stored_key_ids(model: type[models.Model], field: KeyedField, *, using: str = "default") -> list[str]:
    """The ids of the keys that made a column's values, each found with one probe of the column's key-id index."""
    rows = (
        model._base_manager.using(using)
        .annotate(stored_key_id=key_id_of(field.name))
        .order_by("stored_key_id")
        .values_list("stored_key_id", flat=True)
    )
    found: list[str] = []
    while (following := rows.filter(stored_key_id__gt=found[-1] if found else "").first()) is not None:
        found.append(following)
    return found


def unconfigured_keys(
    model: type[models.Model], field: KeyedField, *, using: str = "default"
) -> list[crypto.UnknownKeyError]:
    """Each key id the column holds that this process has no key for, as the error that names it and the column."""
    configured = field.configured_key_ids()
    return [
        crypto.UnknownKeyError(key_id, field.key_setting, column_label(model, field))
        for key_id in stored_key_ids(model, field, using=using)
        if key_id not in configured
    ]


def column_label(model: type[models.Model], field: KeyedField) -> str:
    return f"{model._meta.db_table}.{field.column}"


def every_unconfigured_key(*, using: str = "default") -> list[crypto.UnknownKeyError]:
    """`unconfigured_keys` of every keyed column."""
    return [problem for model, field in keyed_columns() for problem in unconfigured_keys(model, field, using=using)]


def keyed_columns() -> Iterator[tuple[type[models.Model], KeyedField]]:
    """Every column of every installed model that holds values made with an identity code key."""
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        for field in model._meta.get_fields():
            if isinstance(field, EncryptedIdentityCodeField | IdentityCodeIndexField):
                yield model, field


@dataclass(frozen=True)
class KeyRotation:
    """How `rotate_identity_keys` puts one keyed column under the newest key, for a column a plain save cannot rewrite
    (an append-only table's, a copy of another row's index); registered by the app that owns the column, in its
    `AppConfig.ready()`. A model whose keyed index is computed from its own encrypted code is rewritten by saving its
    rows again (`resaved_columns`), and needs none.

    `rewrite(dry_run=…)` rewrites the column's rows not under the newest key (or only counts them) and returns how
    many; `refusal(connection)` says why this connection may not (its database role, say), or "" when it may.
    """

    label: str
    model: type[models.Model]
    field: str
    rewrite: Callable[..., int]
    refusal: Callable[[BaseDatabaseWrapper], str] | None = None


_key_rotations: list[KeyRotation] = []


def key_rotation_register(rotation: KeyRotation) -> None:
    if rotation not in _key_rotations:
        _key_rotations.append(rotation)


def key_rotations() -> list[KeyRotation]:
    return list(_key_rotations)


def resaved_columns() -> list[tuple[type[models.Model], IdentityCodeDigestField]]:
    """The keyed indexes computed from an encrypted identity code of the same row: saving the row again rewrites
    both columns under the newest keys."""
    return [
        (model, field)
        for model, field in keyed_columns()
        if isinstance(field, IdentityCodeDigestField)
        and isinstance(model._meta.get_field(field.source), EncryptedIdentityCodeField)
    ]
