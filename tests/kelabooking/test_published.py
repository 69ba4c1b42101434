"""The published secrets (kelabooking/published.py): the list holds every secret the repository's files show, and a
key matches however it is written."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from kelabooking import crypto
from kelabooking.published import is_published

ROOT = Path(__file__).resolve().parents[2]

# A key: base64url of 32 bytes or more, mixing capitals, small letters and digits (names and paths do not).
KEY_SHAPED = re.compile(r"(?<![\w=-])[\w-]{40,}={0,2}(?![\w=-])")
# A secret setting given a value: in quotes anywhere, bare in shell, YAML and Dockerfiles.
SECRET_NAME = r"\b(?:SECRET_KEY(?:_FALLBACKS)?|[A-Z_]*PASSWORD)\b"
QUOTED = re.compile(SECRET_NAME + r"""["']?[ \t]*[:=,][ \t]*(["'])(?P<value>[^"'$]+?)\1""")
BARE = re.compile(SECRET_NAME + r"[ \t]*[:=][ \t]*(?P<value>[\w.-]+)(?=\s|$)", re.MULTILINE)
URL_PASSWORD = re.compile(r"://[^\s:/@\"'`]+:(?P<value>[^\s@\"'`/$]+)@")


def repository_files() -> list[Path]:
    """The files git tracks, and new ones it would (not ignored): what a clone or the next commit holds."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],  # noqa: S607 - git from PATH
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [ROOT / name for name in listed if (ROOT / name).is_file()]


def secrets_in(text: str, *, python: bool) -> set[str]:
    found = {match["value"] for pattern in (QUOTED, URL_PASSWORD) for match in pattern.finditer(text)}
    if not python:
        found |= {match["value"] for match in BARE.finditer(text)}
    found = {value for value in found if not re.fullmatch(r"[A-Z_]+", value)}  # a list of names, not a value
    for token in KEY_SHAPED.findall(text):
        secret = crypto.key_bytes(token)
        mixed = all(re.search(characters, token) for characters in ("[A-Z]", "[a-z]", "[0-9]"))
        if mixed and secret is not None and len(secret) >= crypto.MIN_KEY_BYTES:
            found.add(token)
    return found


def test_published_secrets__every_secret_in_the_repository_files__is_listed() -> None:
    unlisted = {}
    for path in repository_files():
        if path == Path(__file__):
            continue  # its own examples, below
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # compiled catalogues and images
        for value in secrets_in(text, python=path.suffix == ".py"):
            # `${VAR:-key}` in a compose file: the key follows the dash
            if not (is_published(value) or is_published(value.removeprefix("-"))):
                unlisted[value] = str(path.relative_to(ROOT))
    assert unlisted == {}, "add these to kelabooking/published.py (or stop publishing them)"


def test_published_secrets__the_search__finds_each_kind_of_secret() -> None:
    text = """
        SECRET_KEY = "a-development-secret-key"
        os.environ.setdefault("SECRET_KEY", "a-test-secret-key")
        IDENTITY_CODE_HMAC_KEYS: "${IDENTITY_CODE_HMAC_KEYS:-Q1Vl6fM1Z3pAr0n9Xw3y8nXUOWEn2M2sEyk2hH4-Kq8=}"
        DATABASE_URL: "postgres://app:a-database-password@db:5432/app"
        def test_settings_are_read_from_the_environment_in_one_place_only(): ...
        SECRET_KEY = env_str("SECRET_KEY")  # read, not given
        SECRET_KEY: "${SECRET_KEY:?Set SECRET_KEY}"
        @pytest.mark.parametrize("variable", ["SECRET_KEY", "DEBUG"])
    """
    compose = "POSTGRES_PASSWORD: a-bare-password\nRUN SECRET_KEY=a-build-key python manage.py collectstatic\n"
    assert secrets_in(text, python=True) == {
        "a-development-secret-key",
        "a-test-secret-key",
        "-Q1Vl6fM1Z3pAr0n9Xw3y8nXUOWEn2M2sEyk2hH4-Kq8=",
        "a-database-password",
    }
    assert secrets_in(compose, python=False) == {"a-bare-password", "a-build-key"}


@pytest.mark.parametrize(
    "written",
    [
        "vJm7TpVs6e3CgepCmWtK8UnAZAwJ7uEGmNz6Ir1mlh8=",
        "vJm7TpVs6e3CgepCmWtK8UnAZAwJ7uEGmNz6Ir1mlh8",  # without padding
        " vJm7TpVs6e3CgepCmWtK8UnAZAwJ7uEGmNz6Ir1mlh8=\n",
        "kela-demo-2026",
    ],
)
def test_is_published__a_published_value_however_written__matches(written: str) -> None:
    assert is_published(written)


def test_is_published__a_new_key__does_not_match() -> None:
    assert not is_published(crypto.new_hmac_key())
    assert not is_published(crypto.new_encryption_key())
    assert not is_published("kela-demo-2027")
