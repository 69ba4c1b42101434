"""Interpreter languages: ISO 639 codes with names translated into the page's language.

Django's own catalogues already translate most language names; the rest are named here.
"""

from __future__ import annotations

import unicodedata

from django.conf.locale import LANG_INFO
from django.utils.text import capfirst
from django.utils.translation import get_language, gettext
from django.utils.translation import gettext_lazy as _

# Languages Kela's customers most often need an interpreter for, and a few more.
INTERPRETER_LANGUAGES = [
    "ar", "so", "ru", "uk", "fa", "prs", "ckb", "ku", "ti", "am", "ps", "ur", "bn", "ne", "my", "th", "vi",
    "zh", "tr", "sq", "et", "lv", "lt", "pl", "ro", "bg", "hu", "sr", "bs", "hr", "fr", "es", "pt", "it", "de",
    "en", "sw", "hi", "ko", "ja", "he",
]  # fmt: skip

OWN_NAMES = {
    "so": _("Somali"),
    "prs": _("Dari"),
    "ku": _("Kurdish (Kurmanji)"),
    "ti": _("Tigrinya"),
    "am": _("Amharic"),
    "ps": _("Pashto"),
    "zh": _("Chinese (Mandarin)"),
    "lt": _("Lithuanian"),  # Django's Swedish catalogue names it "Lettiska", as Latvian
}


def language_name(code: str) -> str:
    """The language's name in the active language."""
    if code in OWN_NAMES:
        return str(OWN_NAMES[code])
    if code in LANG_INFO and "name" in LANG_INFO[code]:
        return gettext(LANG_INFO[code]["name"])
    return code


# Letters that Finnish and Swedish sort after z, in this order; other accented letters sort with their base letter.
_AFTER_Z = {"fi": "åäö", "sv": "åäö"}


def collation_key(text: str, language: str | None = None) -> list[tuple[int, str]]:
    """Sort key for names in the page's language: Finnish and Swedish put å, ä and ö after z (`sorted()` alone puts
    them after every ASCII letter, ä before å), and case does not matter."""
    after_z = _AFTER_Z.get(language or get_language() or "", "")
    key = []
    for char in text.casefold():
        if char in after_z:
            key.append((1, str(after_z.index(char))))
        else:
            key.append((0, unicodedata.normalize("NFD", char)[0]))
    return key


def interpreter_language_choices() -> list[tuple[str, str]]:
    """The interpreter languages, named and sorted in the page's language."""
    named = [(code, capfirst(language_name(code))) for code in INTERPRETER_LANGUAGES]
    return sorted(named, key=lambda choice: collation_key(choice[1]))
