"""The multi-replica production shape on one machine, for the replica drills (tests/test_replica_drills.py): real
parts, all on 127.0.0.1, each stopped by whoever started it.

- `PostgresPair`: a PostgreSQL primary and its synchronous standby, two clusters of their own (initdb and
  pg_basebackup from the machine's PostgreSQL binaries) in a temporary folder, reached through libpq's multi-host
  URL with `target_session_attrs=read-write`; the primary can be stopped abruptly and the standby promoted;
- `HAProxy`: Debian's haproxy in front of the web replicas, health-checking each, with its runtime API (a unix
  socket) to drain a replica before it stops.

PostgreSQL refuses to run as root: when the tests run as root, its programs run as the `postgres` user.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

from tests.drills import Processes, Started, free_port, wait_for

# What HAProxy asks each replica before sending it requests: the readiness probe (database, cache and migrations;
# kelabooking/probes.py), 503 while any of them fails.
HEALTH_CHECK_PATH = "/readyz"
HAPROXY = shutil.which("haproxy") or ""
DATABASE_NAME = "kelabooking"


def postgres_bin() -> Path | None:
    """The newest PostgreSQL server binaries on the machine (Debian keeps them under /usr/lib/postgresql/NN/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda path: int(path.parent.parent.name))
    return found[-1].parent if found else None


def missing_parts() -> str | None:
    """Why the shape cannot be built here (None: it can)."""
    if not HAPROXY:
        return "needs haproxy (apt-get install haproxy)"
    if not shutil.which("redis-server"):
        return "needs redis-server (apt-get install redis-server)"
    if postgres_bin() is None:
        return "needs the PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "runs as root and finds no postgres user to run PostgreSQL as"
    return None


class PostgresPair:
    """A primary on one port and a synchronous standby on another; `stop()` ends both and removes their folder."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="kelabooking-replicas-pg-"))
        self.primary_port, self.standby_port = free_port(), free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.dir, user="postgres", group="postgres")

    # --- Programs ---

    def run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60, cwd=self.dir)  # noqa: S603

    def data(self, name: str) -> Path:
        return self.dir / name

    def pg_ctl(self, name: str, *args: str) -> None:
        self.run("pg_ctl", "-D", str(self.data(name)), "-l", str(self.dir / f"{name}.log"), *args)

    def log(self, name: str) -> str:
        with contextlib.suppress(OSError):
            return (self.dir / f"{name}.log").read_text(errors="replace")[-4000:]
        return ""

    # --- Life cycle ---

    def start(self) -> None:
        """The primary, initialised and started; the standby follows with `start_standby()` (after the schema is
        migrated, so that the base backup carries it)."""
        self.run("initdb", "-D", str(self.data("primary")), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self._configure("primary", port=self.primary_port)
        self.pg_ctl("primary", "-w", "start")
        with self.connect(self.primary_port, dbname="postgres") as connection:
            connection.execute(f"CREATE DATABASE {DATABASE_NAME}")

    def start_standby(self) -> None:
        """A base backup of the primary as a streaming standby, then made synchronous: from here on a commit returns
        only once the standby has its WAL."""
        source = ["-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres"]
        self.run(
            "pg_basebackup",
            *source,
            "-D",
            str(self.data("standby")),
            "-R",
            "-X",
            "stream",
            "--checkpoint=fast",
            "--no-sync",
        )
        with (self.data("standby") / "postgresql.auto.conf").open("a") as conf:
            conf.write(f"port = {self.standby_port}\n")
            conf.write(
                f"primary_conninfo = 'host=127.0.0.1 port={self.primary_port} user=postgres application_name=standby'\n"
            )
        self.pg_ctl("standby", "-w", "start")
        with self.connect(self.primary_port, dbname="postgres") as connection:
            connection.execute("ALTER SYSTEM SET synchronous_standby_names = 'standby'")
            connection.execute("SELECT pg_reload_conf()")
        wait_for(self.standby_is_synchronous, what="the standby streams synchronously", timeout=30)

    def _configure(self, name: str, *, port: int) -> None:
        with (self.data(name) / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.dir}'\n"
                "wal_level = replica\nmax_wal_senders = 5\nmax_connections = 100\n"
                # The drills stop the server, never the machine: the operating system keeps what fsync would force.
                "fsync = off\nsynchronous_commit = on\n"
            )

    def standby_is_synchronous(self) -> bool:
        with self.connect(self.primary_port, dbname="postgres") as connection:
            row = connection.execute("SELECT sync_state FROM pg_stat_replication").fetchone()
        return row is not None and row[0] == "sync"

    def stop_primary_abruptly(self) -> None:
        """`pg_ctl stop -m immediate`: every backend ends at once, without a checkpoint, as a crash would."""
        self.pg_ctl("primary", "-m", "immediate", "stop")

    def promote(self) -> None:
        self.pg_ctl("standby", "-w", "promote")

    def stop(self) -> None:
        for name in ("standby", "primary"):
            if (self.data(name) / "postmaster.pid").exists():
                with contextlib.suppress(subprocess.SubprocessError):
                    self.pg_ctl(name, "-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- Reaching it ---

    @property
    def url(self) -> str:
        """DATABASE_URL in libpq's multi-host form: whichever of the two takes writes."""
        return (
            f"postgresql://postgres@127.0.0.1:{self.primary_port},127.0.0.1:{self.standby_port}/{DATABASE_NAME}"
            "?target_session_attrs=read-write&connect_timeout=2"
        )

    def connect(self, port: int | None = None, *, dbname: str = DATABASE_NAME) -> psycopg.Connection:
        """A connection of the test's own: to `port`, or to whichever server takes writes."""
        if port is None:
            hosts = f"host=127.0.0.1,127.0.0.1 port={self.primary_port},{self.standby_port}"
            return psycopg.connect(
                f"{hosts} user=postgres dbname={dbname} target_session_attrs=read-write connect_timeout=2",
                autocommit=True,
            )
        return psycopg.connect(
            f"host=127.0.0.1 port={port} user=postgres dbname={dbname} connect_timeout=2", autocommit=True
        )

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self.connect() as connection:
            return connection.execute(sql, params).fetchall()


class HAProxy:
    """The balancer: round robin over the replicas that pass the health check; the same replicas once more as
    unchecked backups, used only when every replica fails its check (the database is away), so that the partner
    gets the app's translated "please try again" page rather than the balancer's own 503."""

    def __init__(self, processes: Processes, replicas: dict[str, int]) -> None:
        self.processes = processes
        self.replicas = replicas
        self.port = free_port()
        self.socket_path = processes.workdir / "haproxy.sock"
        self.config = processes.workdir / "haproxy.cfg"
        self.current: Started | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def render(self) -> str:
        servers = "\n".join(f"    server {name} 127.0.0.1:{port} check" for name, port in self.replicas.items())
        backups = "\n".join(f"    server {name}-anyway 127.0.0.1:{port} backup" for name, port in self.replicas.items())
        return f"""global
    maxconn 500
    stats socket {self.socket_path} mode 600 level admin

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout queue 30s
    retries 3
    option redispatch

frontend partners
    bind 127.0.0.1:{self.port}
    default_backend web

backend web
    balance roundrobin
    option httpchk
    http-check send meth GET uri {HEALTH_CHECK_PATH} ver HTTP/1.1 hdr Host 127.0.0.1
    http-check expect status 200
    default-server inter 500ms fall 2 rise 2
    option allbackups
{servers}
{backups}
"""

    def start(self) -> None:
        self.config.write_text(self.render())
        args = [HAPROXY, "-f", str(self.config), "-db"]  # -db: in the foreground, logging to stderr
        self.current = self.processes.start("haproxy", args, env={"PATH": os.environ["PATH"]})
        wait_for(lambda: self.socket_path.exists(), what="haproxy's runtime socket", log=self.current, timeout=10)
        wait_for(
            lambda: all(self.status(name) == "UP" for name in self.replicas),
            what="haproxy sees every replica up",
            log=self.current,
        )

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as runtime:
            runtime.settimeout(5)
            runtime.connect(str(self.socket_path))
            runtime.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := runtime.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stats(self) -> dict[str, dict[str, str]]:
        """`show stat` of the web backend's servers, by name."""
        text = self.command("show stat").lstrip("# ")
        return {row["svname"]: row for row in csv.DictReader(io.StringIO(text)) if row["pxname"] == "web"}

    def status(self, name: str) -> str:
        return self.stats()[name]["status"]

    def sessions(self, name: str) -> int:
        return int(self.stats()[name]["scur"] or 0)

    def drain(self, name: str) -> None:
        """No new request goes to `name`, neither as a checked server nor as its unchecked backup (which a loaded
        machine's slow health checks of the others would otherwise bring in while it stops); those it has finish."""
        for server in (name, f"{name}-anyway"):
            self.command(f"set server web/{server} state drain")
        wait_for(
            lambda: self.sessions(name) == self.sessions(f"{name}-anyway") == 0,
            what=f"{name} finishes its requests",
            timeout=30,
        )

    def enable(self, name: str) -> None:
        for server in (name, f"{name}-anyway"):
            self.command(f"set server web/{server} state ready")
        wait_for(lambda: self.status(name) == "UP", what=f"haproxy sees {name} up again", timeout=30)
