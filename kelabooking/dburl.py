"""DATABASE_URL as Django's DATABASES["default"]: dj-database-url's forms, plus libpq's own multi-host URL.

A PostgreSQL that fails over is reached through libpq's multi-host connection string, e.g.

    postgresql://kelabooking@db1:5432,db2:5432/kelabooking?target_session_attrs=read-write&connect_timeout=3

libpq tries the hosts in turn and, with `target_session_attrs=read-write`, settles on the one that takes writes (the
primary, or the standby once promoted). dj-database-url refuses such a URL (a `ParseError`); this module hands the
hosts and ports to libpq as its comma-separated `host` and `port` and every query option (target_session_attrs,
connect_timeout, sslmode, application_name…) as a connection option. Any other URL goes through dj-database-url.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import dj_database_url

POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql"}


def database_config(url: str, *, conn_max_age: int = 0) -> dict[str, Any]:
    """The DATABASES entry that `url` describes."""
    parts = urlsplit(url)
    if parts.scheme in POSTGRES_SCHEMES and "," in parts.netloc:
        return _multi_host(url, conn_max_age=conn_max_age)
    return dj_database_url.parse(url, conn_max_age=conn_max_age)


def _multi_host(url: str, *, conn_max_age: int) -> dict[str, Any]:
    # urlsplit cannot read the netloc's ports ("5432,db2:5432" is no port): take it apart by hand.
    rest = url.split("://", 1)[1]
    netloc, _, path_and_query = rest.partition("/")
    path, _, query = path_and_query.partition("?")
    userinfo, _, hostlist = netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    hosts, ports = [], []
    for item in hostlist.split(","):
        host, port = _host_and_port(item)
        if not host:
            raise ValueError(f"DATABASE_URL names an empty host in {hostlist!r}")
        hosts.append(host)
        ports.append(port)
    if any(ports):
        ports = [port or "5432" for port in ports]  # libpq takes one port per host, or a single one for all
    name = unquote(path)
    if not name:
        raise ValueError("DATABASE_URL names no database")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(user),
        "PASSWORD": unquote(password),
        "HOST": ",".join(hosts),
        "PORT": ",".join(ports) if any(ports) else "",
        "CONN_MAX_AGE": conn_max_age,
        "CONN_HEALTH_CHECKS": False,
        "DISABLE_SERVER_SIDE_CURSORS": False,
        "OPTIONS": dict(parse_qsl(query, keep_blank_values=False)),
    }


def _host_and_port(item: str) -> tuple[str, str]:
    item = unquote(item.strip())
    if item.startswith("["):  # [IPv6]:port
        host, _, after = item[1:].partition("]")
        return host, after.removeprefix(":")
    host, _, port = item.partition(":")
    if port and not port.isdigit():
        raise ValueError(f"DATABASE_URL has a port that is not a number: {port!r}")
    return host, port
