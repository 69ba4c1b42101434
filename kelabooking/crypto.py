"""Personal identity codes at rest: encrypted with Fernet, found through a keyed hash (DESIGN.md §4 rule 8).

Two key lists come from the environment, each newest first:

- IDENTITY_CODE_ENCRYPTION_KEYS: Fernet keys. The newest encrypts; the key a value names decrypts it, so a new key
  is put in front, `manage.py rotate_identity_keys` re-encrypts every row with it, and the old key is then dropped.
- IDENTITY_CODE_HMAC_KEYS: secrets (at least 32 random bytes) for HMAC-SHA256 of the canonical code: the look-up
  index, unique where the plain column was. The newest writes; a look-up tries each, so rows written with an older
  key are found until the rotation command has rewritten them with the newest.

Every stored value records the key that made it: `<key id>:<Fernet token>` and `<key id>:<HMAC, base64url>`, the key
id being the first 8 hex digits of the SHA-256 of the key's bytes. So a value under a key that is not configured is
told apart from a person who is not stored: start-up refuses it (system check kelabooking.E005, kelabooking/checks.py)
and a new row is refused while such a value is stored (kelabooking/fields.py), instead of a second row for one person.

With both lists empty and IDENTITY_CODE_GENERATE_KEYS on (DEBUG or the sandbox, as for the OIDC keys), one key of
each is generated once under var/; with it off, nothing under var/ is read. Production refuses to start without keys
(system check kelabooking.E002) or with keys published in the repository (kelabooking.E003).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

ENCRYPTION_KEY_FILE = "identity-code-encryption.keys"
HMAC_KEY_FILE = "identity-code-hmac.keys"
KEY_ID_LENGTH = 8
STORED_KEY_ID_RE = re.compile(r"([0-9a-f]{8}):")
# A key is random bytes: at least this many, and not a few values repeated (such as 32 zero bytes).
MIN_KEY_BYTES = 32
MIN_DISTINCT_BYTES = 16


class IdentityCodeKeyError(ImproperlyConfigured):
    """The identity code keys are missing or malformed."""


class UnknownKeyError(IdentityCodeKeyError):
    """A stored value was made with a key that is not configured (in this process)."""

    def __init__(self, key_id: str, setting: str, where: str = "") -> None:
        self.key_id, self.setting, self.where = key_id, setting, where
        place = f" in {where}" if where else ""
        super().__init__(
            f"Identity codes{place} were stored with key {key_id}, which {setting} does not hold: put that key "
            "back (after the newest) until `manage.py rotate_identity_keys` has rewritten them."
        )


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


def key_bytes(key: str) -> bytes | None:
    """The bytes a key's base64 text stands for (padding optional), or None when it is not base64."""
    try:
        return base64.urlsafe_b64decode(key.strip().encode("ascii") + b"=" * (-len(key.strip()) % 4))
    except (ValueError, UnicodeEncodeError):
        return None


def key_id(key: str) -> str:
    """The key's id: the first hex digits of the SHA-256 of its bytes. Public: it tells keys apart, not their bytes."""
    secret = key_bytes(key)
    if secret is None:
        raise IdentityCodeKeyError("An identity code key is not base64.")
    return hashlib.sha256(secret).hexdigest()[:KEY_ID_LENGTH]


def stored_key_id(value: str) -> str | None:
    """The id of the key that made a stored ciphertext or keyed index, or None when the value carries none."""
    match = STORED_KEY_ID_RE.match(value)
    return match[1] if match else None


def _strength_problem(secret: bytes) -> str | None:
    if len(secret) < MIN_KEY_BYTES:
        return f"at least {MIN_KEY_BYTES} bytes"
    if len(set(secret)) < MIN_DISTINCT_BYTES:
        return f"random bytes (this one has only {len(set(secret))} different byte values)"
    return None


def _keyring(setting: str, keys: tuple[str, ...], make: Callable[[str], Any]) -> dict[str, Any]:
    """The keys by id, newest first; refused when a key is malformed, weak, or given twice."""
    ring: dict[str, Any] = {}
    for key in keys:
        secret = key_bytes(key)
        if secret is None:
            raise IdentityCodeKeyError(f"{setting} holds a key that is not base64.")
        identifier = key_id(key)
        weakness = _strength_problem(secret)
        if weakness:
            raise IdentityCodeKeyError(f"{setting}: key {identifier} is too weak; a key must be {weakness}.")
        if identifier in ring:
            raise IdentityCodeKeyError(f"{setting} holds key {identifier} twice.")
        try:
            ring[identifier] = make(key)
        except (ValueError, TypeError) as error:
            raise IdentityCodeKeyError(f"{setting}: key {identifier} is not a Fernet key.") from error
    return ring


@functools.lru_cache(maxsize=8)
def _fernets(keys: tuple[str, ...]) -> dict[str, Fernet]:
    return _keyring("IDENTITY_CODE_ENCRYPTION_KEYS", keys, Fernet)


@functools.lru_cache(maxsize=8)
def _hmac_secrets(keys: tuple[str, ...]) -> dict[str, bytes]:
    return _keyring("IDENTITY_CODE_HMAC_KEYS", keys, key_bytes)


def encryption_key_ids() -> list[str]:
    """The ids of the configured encryption keys, newest (the one that encrypts) first."""
    return list(_fernets(encryption_keys()))


def hmac_key_ids() -> list[str]:
    """The ids of the configured HMAC keys, newest (the one that indexes) first."""
    return list(_hmac_secrets(hmac_keys()))


def encrypt(value: str) -> str:
    """`<key id>:<Fernet token>`, with the newest encryption key."""
    identifier, fernet = next(iter(_fernets(encryption_keys()).items()))
    return f"{identifier}:{fernet.encrypt(value.encode('utf-8')).decode('ascii')}"


def decrypt(stored: str) -> str:
    """The clear value of `encrypt`'s output, with the key its id names; a key that is not configured is named."""
    identifier = stored_key_id(stored)
    if identifier is None:
        raise IdentityCodeKeyError("A stored identity code carries no key id: run `manage.py migrate`.")
    fernet = _fernets(encryption_keys()).get(identifier)
    if fernet is None:
        raise UnknownKeyError(identifier, "IDENTITY_CODE_ENCRYPTION_KEYS")
    try:
        return fernet.decrypt(stored[KEY_ID_LENGTH + 1 :].encode("ascii")).decode("utf-8")
    except InvalidToken as error:
        raise IdentityCodeKeyError(f"A stored identity code does not decrypt with its key {identifier}.") from error


def digest(code: str) -> str:
    """The look-up index of a canonical identity code, with the newest HMAC key: `<key id>:<HMAC-SHA256>`."""
    identifier, secret = next(iter(_hmac_secrets(hmac_keys()).items()))
    return _digest(identifier, secret, code)


def digests(code: str) -> list[str]:
    """The code's look-up index under every configured HMAC key, newest first: what a look-up filters on."""
    return [_digest(identifier, secret, code) for identifier, secret in _hmac_secrets(hmac_keys()).items()]


def _digest(identifier: str, secret: bytes, code: str) -> str:
    # base64url without padding: 43 characters, so that id and index fit the 64 characters the column always had.
    mac = hmac.new(secret, code.encode("utf-8"), hashlib.sha256).digest()
    return f"{identifier}:{base64.urlsafe_b64encode(mac).rstrip(b'=').decode('ascii')}"


def check_keys() -> list[str]:
    """Problems with the configured keys, for the system check: empty when encryption and look-ups can run."""
    problems = []
    for ids in (encryption_key_ids, hmac_key_ids):
        try:
            ids()
        except IdentityCodeKeyError as error:
            problems.append(str(error))
    return problems
