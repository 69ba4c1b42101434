"""DATABASE_URL in libpq's multi-host form (kelabooking/dburl.py): what a PostgreSQL that fails over is reached by."""

from __future__ import annotations

import secrets
from urllib.parse import quote

import psycopg
import pytest
from django.db import connection, connections

from kelabooking.dburl import database_config
from tests.kelabooking.test_settings import settings_in_fresh_process

# A password with a character that must be percent-encoded, made here: the repository publishes none.
RAW_CREDENTIAL = "s/" + secrets.token_hex(4)
MULTI_HOST = (
    "postgresql://kela%40app:" + quote(RAW_CREDENTIAL, safe="") + "@db1.example:5432,db2.example:5433/kelabooking"
    "?target_session_attrs=read-write&connect_timeout=3&sslmode=prefer"
)


def test_database_url__multi_host__hosts_and_ports_comma_separated_options_passed_to_libpq() -> None:
    config = database_config(MULTI_HOST, conn_max_age=60)

    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["NAME"], config["USER"], config["PASSWORD"]) == ("kelabooking", "kela@app", RAW_CREDENTIAL)
    assert (config["HOST"], config["PORT"]) == ("db1.example,db2.example", "5432,5433")
    assert config["OPTIONS"] == {"target_session_attrs": "read-write", "connect_timeout": "3", "sslmode": "prefer"}
    assert config["CONN_MAX_AGE"] == 60


def test_database_url__multi_host_without_ports_or_with_some__libpq_gets_one_port_per_host_or_none() -> None:
    assert database_config("postgres://u@a,b/db")["PORT"] == ""
    assert database_config("postgres://u@a,b:6000/db")["PORT"] == "5432,6000"
    assert database_config("postgres://u@[::1]:5432,[fe80::1]/db")["HOST"] == "::1,fe80::1"


@pytest.mark.parametrize("url", ["postgres://u@a,:5432/db", "postgres://u@a,b/", "postgres://u@a:x,b/db"])
def test_database_url__multi_host_malformed__refused(url: str) -> None:
    with pytest.raises(ValueError, match="DATABASE_URL"):
        database_config(url)


def test_database_url__single_host__read_as_dj_database_url_reads_it() -> None:
    url = "postgres://u:" + secrets.token_hex(4) + "@db.example:6543/kb?application_name=web"
    config = database_config(url, conn_max_age=5)
    assert (config["HOST"], config["PORT"], config["NAME"], config["USER"]) == ("db.example", 6543, "kb", "u")
    assert config["OPTIONS"] == {"application_name": "web"}
    assert database_config("sqlite:////tmp/x.sqlite3")["ENGINE"] == "django.db.backends.sqlite3"


def test_settings__multi_host_database_url__accepted_with_connection_health_checks() -> None:
    """dj-database-url refused libpq's multi-host URL with a ParseError: the settings did not load."""
    env = {"DEBUG": "1", "DATABASE_URL": MULTI_HOST}
    databases = settings_in_fresh_process(env, "DATABASES")["DATABASES"]

    default = databases["default"]
    assert (default["HOST"], default["PORT"]) == ("db1.example,db2.example", "5432,5433")
    assert default["OPTIONS"]["target_session_attrs"] == "read-write"
    assert default["CONN_HEALTH_CHECKS"] is True


@pytest.mark.postgres
@pytest.mark.django_db
def test_database_url__multi_host__libpq_skips_a_dead_host_and_connects_to_the_live_one() -> None:
    """Django hands the comma-separated hosts to psycopg as they are: the first (nothing listens) is skipped."""
    db = connection.settings_dict
    live = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    config = database_config(
        f"postgresql://{db['USER']}@127.0.0.1:9,{live}/{db['NAME']}?target_session_attrs=read-write&connect_timeout=3"
    )
    settings_dict = {**connection.settings_dict, **config, "PASSWORD": db["PASSWORD"]}
    wrapper = type(connections["default"])(settings_dict, alias="multi")
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT pg_is_in_recovery()")
            assert cursor.fetchone() == (False,)
        assert isinstance(wrapper.connection, psycopg.Connection)
        assert wrapper.connection.info.port == int(db["PORT"] or 5432)
    finally:
        wrapper.close()
