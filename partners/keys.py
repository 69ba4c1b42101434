"""The relying party's own keys: RSA for signing (`private_key_jwt` client assertions, request objects) and for
encrypted ID tokens.

Production gives them as PEM (the text, or a file path) in OIDC_RP_SIGNING_KEY and OIDC_RP_ENCRYPTION_KEY. When
they are empty and OIDC_RP_GENERATE_KEYS is on (DEBUG or the sandbox), a key pair is generated once under
OIDC_RP_KEY_DIR (`var/`), so the embedded default and the sandbox work without setup; with it off, nothing there is
read. The public halves are published at /.well-known/jwks.json.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from joserfc.jwk import KeySet, RSAKey

# What we sign with, best first: RS256 unless the provider advertises only the PSS forms (or stronger hashes).
SIGNING_ALGS = ("RS256", "PS256", "RS384", "PS384", "RS512", "PS512")
ENCRYPTION_ALG = "RSA-OAEP-256"


def load_or_generate_rsa_key(value: str, *, generated_name: str) -> RSAKey:
    """An RSA private key from PEM text or a file path; when empty, one generated once under OIDC_RP_KEY_DIR.

    With generation off (production) that folder is never read: a key a development run left there must not sign
    our requests or be published in our JWKS.
    """
    if value.lstrip().startswith("-----BEGIN"):
        return RSAKey.import_key(value)
    if value:
        return RSAKey.import_key(Path(value).read_bytes())
    if not settings.OIDC_RP_GENERATE_KEYS:
        raise ImproperlyConfigured(f"Set the relying party's key ({generated_name}) in the environment.")
    path = Path(settings.OIDC_RP_KEY_DIR) / generated_name
    if not path.exists():
        _publish_new_key(path)
    return RSAKey.import_key(path.read_bytes())


def _publish_new_key(path: Path) -> None:
    """Write a new key beside `path`, then link it into place: the first of several starting workers wins, and no
    worker ever reads a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = RSAKey.generate_key(2048, private=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(key.as_pem(private=True))
        os.link(draft, path)
    except FileExistsError:
        pass  # another worker's key is in place: use that one
    finally:
        draft.unlink(missing_ok=True)


def with_use(key: RSAKey, *, use: str, alg: str | None) -> RSAKey:
    """The key labelled for one use (and one algorithm, when given), with its RFC 7638 thumbprint as `kid`."""
    parameters = {"use": use, "kid": key.thumbprint()}
    if alg:
        parameters["alg"] = alg
    return RSAKey.import_key(key.as_dict(private=True), parameters)


@functools.cache
def signing_key() -> RSAKey:
    """No `alg` on the key: the same key signs RS256 or the PSS form the provider advertises."""
    key = load_or_generate_rsa_key(settings.OIDC_RP_SIGNING_KEY, generated_name="rp-signing.pem")
    return with_use(key, use="sig", alg=None)


@functools.cache
def encryption_key() -> RSAKey:
    """Labelled RSA-OAEP-256, unless the operator also allows RSA-OAEP (SHA-1): then the key names no algorithm, so
    that a provider which reads `alg` from our JWKS may use either."""
    key = load_or_generate_rsa_key(settings.OIDC_RP_ENCRYPTION_KEY, generated_name="rp-encryption.pem")
    return with_use(key, use="enc", alg=None if settings.OIDC_RP_JWE_ALLOW_RSA_OAEP else ENCRYPTION_ALG)


def public_jwks() -> dict:
    """The RP's public keys as a JWKS document: those that are configured (none are needed for a client that
    authenticates with a secret and receives plain ID tokens)."""
    available = []
    for load in (signing_key, encryption_key):
        try:
            available.append(load())
        except ImproperlyConfigured:
            continue
    return KeySet(available).as_dict(private=False)
