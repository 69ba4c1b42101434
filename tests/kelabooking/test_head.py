"""HEAD is answered wherever GET is: uptime checkers and load balancers ask with HEAD, and a 405 reads as "down"."""

from __future__ import annotations

import socket
from urllib.parse import urlparse

import pytest
from django.urls import reverse
from django.utils import translation

PAGES = [
    ("start", "fi"),
    ("start", "sv"),
    ("accessibility", "en"),
    ("privacy", "fi"),
    ("registry:request", "fi"),
    ("registry:request-sent", "sv"),
    ("partners:logged-out", "fi"),
]


def url(name: str, language: str) -> str:
    with translation.override(language):
        return reverse(name)


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "language"), PAGES)
def test_head__a_get_page__answers_as_get_does_without_a_body(client, name: str, language: str) -> None:
    path = url(name, language)
    get = client.get(path)
    head = client.head(path)
    assert (get.status_code, head.status_code) == (200, 200), path
    assert head.content == b""
    assert head["Content-Type"] == get["Content-Type"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/healthz", "/admin/login/"])
def test_head__health_and_admin_login__answer_200(client, path: str) -> None:
    response = client.head(path)
    assert (response.status_code, response.content) == (200, b"")


@pytest.mark.django_db
def test_head__only_get_head_and_post__other_methods_still_refused(client) -> None:
    assert client.put(url("start", "fi")).status_code == 405
    assert client.post("/healthz").status_code == 405


def _raw(base_url: str, request: bytes) -> bytes:
    """One request over a real socket, everything the server sends until it closes."""
    parsed = urlparse(base_url)
    received = b""
    with socket.create_connection((parsed.hostname, parsed.port), timeout=10) as connection:
        connection.sendall(request)
        while chunk := connection.recv(65536):
            received += chunk
    return received


@pytest.mark.django_db(transaction=True)
def test_head__over_http__status_line_and_headers_only(live_server) -> None:
    """Through a real HTTP server: HEAD /fi/ gets 200 and not one byte after the headers."""
    host = urlparse(live_server.url).hostname
    head = _raw(live_server.url, f"HEAD /fi/ HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
    status_line, _, rest = head.partition(b"\r\n")
    assert status_line.split()[1] == b"200", head[:200]
    headers, separator, body = rest.partition(b"\r\n\r\n")
    assert separator == b"\r\n\r\n"
    assert body == b""
    assert b"text/html" in headers
