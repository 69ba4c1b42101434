"""Interpreter languages: ISO 639 codes with names translated into the page's language.

Django's own catalogues already translate most language names; the rest are named here.
"""

from __future__ import annotations

from django.conf.locale import LANG_INFO
from django.utils.translation import gettext
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
}


def language_name(code: str) -> str:
    """The language's name in the active language."""
    if code in OWN_NAMES:
        return str(OWN_NAMES[code])
    if code in LANG_INFO and "name" in LANG_INFO[code]:
        return gettext(LANG_INFO[code]["name"])
    return code


def interpreter_language_choices() -> list[tuple[str, str]]:
    return sorted(((code, language_name(code)) for code in INTERPRETER_LANGUAGES), key=lambda choice: choice[1])
