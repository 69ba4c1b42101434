from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.urls import translate_url
from django.utils.translation import get_language


def service(request: HttpRequest) -> dict[str, object]:
    """Facts every page shows: the service name and Kela's authority line."""
    return {
        "SERVICE_NAME": settings.SERVICE_NAME,
        "AUTHORITY_LINE": {
            "phone": settings.KELA_AUTHORITY_LINE_PHONE,
            "phone_uri": "tel:+358" + settings.KELA_AUTHORITY_LINE_PHONE.replace(" ", "").lstrip("0"),
            "opens": settings.KELA_AUTHORITY_LINE_OPENS,
            "closes": settings.KELA_AUTHORITY_LINE_CLOSES,
        },
    }


def language_links(request: HttpRequest) -> dict[str, object]:
    """Links to this same page in each language (the URL carries the language; no cookie, no POST needed). None on a
    page whose address carries no language (a sign-in callback's answer, whose address holds a code used once): a
    link there would only load the same page again, or try the code a second time."""
    current = get_language()
    path = request.get_full_path()
    links = [
        {"code": code, "name": name, "url": translate_url(path, code), "current": code == current}
        for code, name in settings.LANGUAGES
    ]
    if all(link["url"] == path for link in links):
        return {"language_links": []}
    return {"language_links": links}
