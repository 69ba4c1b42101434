"""Finnish and Swedish ship complete: no untranslated or fuzzy entry, compiled catalogues up to date."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import polib
import pytest

ROOT = Path(__file__).resolve().parents[1]
LANGUAGES = ["fi", "sv"]


def catalogue(language: str) -> polib.POFile:
    return polib.pofile(str(ROOT / "locale" / language / "LC_MESSAGES" / "django.po"))


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalogue__has_no_untranslated_or_fuzzy_entries(language: str) -> None:
    po = catalogue(language)
    assert len(po) > 100
    assert [entry.msgid for entry in po.untranslated_entries()] == []
    assert [entry.msgid for entry in po.fuzzy_entries()] == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalogue__placeholders_survive_translation(language: str) -> None:
    import re

    placeholder = re.compile(r"%\(\w+\)[sd]|\{\{[^}]+\}\}|</?\w+>")
    for entry in catalogue(language).translated_entries():
        if entry.msgid_plural:
            translations = list(entry.msgstr_plural.values())
            expected = placeholder.findall(entry.msgid_plural)
        else:
            translations, expected = [entry.msgstr], placeholder.findall(entry.msgid)
        for translation in translations:
            assert sorted(placeholder.findall(translation)) == sorted(expected), entry.msgid


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalogue__compiled_mo_matches_po(language: str) -> None:
    folder = ROOT / "locale" / language / "LC_MESSAGES"
    po = {(entry.msgctxt, entry.msgid): entry.msgstr or entry.msgstr_plural for entry in catalogue(language)}
    mo = {
        (entry.msgctxt, entry.msgid): entry.msgstr or entry.msgstr_plural
        for entry in polib.mofile(str(folder / "django.mo"))
    }
    mo.pop((None, ""), None)  # the header
    assert mo == {key: value for key, value in po.items() if value}, "run `make messages` and commit the .mo files"


@pytest.mark.gettext
def test_catalogue__covers_every_string_in_the_code(tmp_path: Path) -> None:
    """Extract the strings again into a scratch copy and compare them with the committed catalogues."""
    scratch = tmp_path / "project"
    shutil.copytree(
        ROOT,
        scratch,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "staticfiles", "tests", "node_modules", "*.sqlite3*", "__pycache__"
        ),
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", "makemessages", "--locale", "fi", "--locale", "sv", "--no-obsolete"],
        cwd=scratch,
        env={"DEBUG": "1", "PATH": "/usr/bin:/bin:/usr/local/bin", "DJANGO_SETTINGS_MODULE": "kelabooking.settings"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for language in LANGUAGES:
        extracted = {
            entry.msgid for entry in polib.pofile(str(scratch / "locale" / language / "LC_MESSAGES" / "django.po"))
        }
        committed = {entry.msgid for entry in catalogue(language)}
        assert sorted(extracted - committed) == [], f"strings missing from locale/{language}: run `make messages`"
