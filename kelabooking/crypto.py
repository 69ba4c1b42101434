"""Personal identity codes at rest: encrypted with Fernet, found through a keyed hash (DESIGN.md §4 rule 8).

Two key lists come from the environment, each newest first:

- IDENTITY_CODE_ENCRYPTION_KEYS: Fernet keys. The newest encrypts; any of them decrypts (MultiFernet), so a new key
  is put in front, `manage.py rotate_identity_keys` re-encrypts every row with it, and the old key is then dropped.
- IDENTITY_CODE_HMAC_KEYS: secrets for HMAC-SHA256 of the canonical code: the look-up index, unique where the plain
  column was. The newest writes; a look-up tries each, so rows written with an older key are found until the
  rotation command has rewritten them with the newest.

With both lists empty and IDENTITY_CODE_GENERATE_KEYS on (DEBUG or the sandbox, as for the OIDC keys), one key of
each is generated once under var/. Production refuses to start without them (system check kelabooking.E002).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

ENCRYPTION_KEY_FILE = "identity-code-encryption.keys"
HMAC_KEY_FILE = "identity-code-hmac.keys"


class IdentityCodeKeyError(ImproperlyConfigured):
    """The identity code keys are missing or malformed."""


def new_encryption_key() -> str:
    return Fernet.generate_key().decode("ascii")


def new_hmac_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def encryption_keys() -> tuple[str, ...]:
    return _keys("IDENTITY_CODE_ENCRYPTION_KEYS", ENCRYPTION_KEY_FILE, new_encryption_key)


def hmac_keys() -> tuple[str, ...]:
    return _keys("IDENTITY_CODE_HMAC_KEYS", HMAC_KEY_FILE, new_hmac_key)


def _keys(setting: str, file_name: str, generate: Callable[[], str]) -> tuple[str, ...]:
    keys = tuple(key.strip() for key in getattr(settings, setting) if key.strip())
    if keys:
        return keys
    if not settings.IDENTITY_CODE_GENERATE_KEYS:
        raise IdentityCodeKeyError(f"Set {setting} in the environment (newest key first, comma-separated).")
    path = Path(settings.IDENTITY_CODE_KEY_DIR) / file_name
    if not path.exists():
        _write_once(path, generate())
    return tuple(line.strip() for line in path.read_text().splitlines() if line.strip())


def _write_once(path: Path, key: str) -> None:
    """Write the key beside `path` and link it into place: the first of several starting processes wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(key + "\n")
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink(missing_ok=True)


def prepend_development_keys(*, encryption: str, hmac_key: str) -> None:
    """Put new keys first in the development key files under var/ (the old ones stay after them, for decrypting
    and finding rows until the rotation has rewritten them)."""
    for file_name, key in ((ENCRYPTION_KEY_FILE, encryption), (HMAC_KEY_FILE, hmac_key)):
        path = Path(settings.IDENTITY_CODE_KEY_DIR) / file_name
        old = path.read_text() if path.exists() else ""
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        draft.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(f"{key}\n{old}")
        draft.replace(path)


@functools.lru_cache(maxsize=8)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except (ValueError, TypeError) as error:
        raise IdentityCodeKeyError("IDENTITY_CODE_ENCRYPTION_KEYS holds a key that is not a Fernet key.") from error


@functools.lru_cache(maxsize=8)
def _hmac_secrets(keys: tuple[str, ...]) -> tuple[bytes, ...]:
    decoded = []
    for key in keys:
        try:
            secret = base64.urlsafe_b64decode(key.encode("ascii") + b"=" * (-len(key) % 4))
        except (ValueError, UnicodeEncodeError) as error:
            raise IdentityCodeKeyError("IDENTITY_CODE_HMAC_KEYS holds a key that is not base64.") from error
        if len(secret) < 32:
            raise IdentityCodeKeyError("IDENTITY_CODE_HMAC_KEYS keys must be at least 32 bytes.")
        decoded.append(secret)
    return tuple(decoded)


def encrypt(value: str) -> str:
    return _fernet(encryption_keys()).encrypt(value.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    try:
        return _fernet(encryption_keys()).decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken as error:
        raise IdentityCodeKeyError("A stored identity code cannot be decrypted with any configured key.") from error


def is_current(token: str) -> bool:
    """Whether `token` was written with the newest encryption key (the rotation command skips those rows)."""
    newest = Fernet(encryption_keys()[0])
    try:
        newest.decrypt(token.encode("ascii"))
    except InvalidToken:
        return False
    return True


def digest(code: str) -> str:
    """The look-up index of a canonical identity code, with the newest HMAC key."""
    return _digest(_hmac_secrets(hmac_keys())[0], code)


def digests(code: str) -> list[str]:
    """The code's look-up index under every configured HMAC key, newest first: what a look-up filters on."""
    return [_digest(secret, code) for secret in _hmac_secrets(hmac_keys())]


def _digest(secret: bytes, code: str) -> str:
    return hmac.new(secret, code.encode("utf-8"), hashlib.sha256).hexdigest()


def check_keys() -> list[str]:
    """Problems with the configured keys, for the system check: empty when encryption and look-ups can run."""
    problems = []
    for load in (encryption_keys, hmac_keys):
        try:
            keys = load()
            (_fernet if load is encryption_keys else _hmac_secrets)(keys)
        except IdentityCodeKeyError as error:
            problems.append(str(error))
    return problems
