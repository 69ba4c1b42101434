"""Model fields for personal identity codes at rest (kelabooking/crypto.py): the encrypted value and its keyed index."""

from __future__ import annotations

from typing import Any

from django.db import models

from kelabooking import crypto


class EncryptedIdentityCodeField(models.TextField):
    """A canonical identity code, stored as a Fernet token and read back in clear.

    Encryption is randomised, so the column cannot be searched: every look-up other than `isnull` is refused here
    (use the model's keyed index, an `IdentityCodeDigestField`), instead of silently never matching.
    """

    description = "A personal identity code, encrypted"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        return crypto.decrypt(value) if value else value

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return crypto.encrypt(value) if value else value

    def get_lookup(self, lookup_name: str) -> Any:
        if lookup_name != "isnull":
            return None
        return super().get_lookup(lookup_name)


class IdentityCodeDigestField(models.CharField):
    """The keyed index (HMAC-SHA256, newest key) of the identity code held in the field named `source`, written on
    every save and bulk insert; a look-up filters on `crypto.digests(code)` to find rows under any configured key."""

    description = "The keyed index of a personal identity code"

    def __init__(self, *args: Any, source: str = "identity_code", **kwargs: Any) -> None:
        self.source = source
        kwargs.setdefault("max_length", 64)
        kwargs["editable"] = False
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> tuple[str, str, list[Any], dict[str, Any]]:
        name, path, args, kwargs = super().deconstruct()
        del kwargs["editable"]
        if kwargs.get("max_length") == 64:
            del kwargs["max_length"]
        if self.source != "identity_code":
            kwargs["source"] = self.source
        return name, path, args, kwargs

    def pre_save(self, model_instance: models.Model, add: bool) -> str | None:
        code = getattr(model_instance, self.source)
        value = crypto.digest(code) if code else (None if self.null else "")
        setattr(model_instance, self.attname, value)
        return value
