"""A real PostgreSQL server for the storage tests, started from the system's binaries in a temporary directory.

``postgres_server`` starts one server per module (``initdb`` with trust authentication, listening on a free
port of 127.0.0.1 and on a socket in its own directory) and stops it with ``pg_ctl stop -m immediate``;
``postgres_url`` gives each test a fresh database on it. PostgreSQL refuses to run as root, so as root the
binaries run as the ``postgres`` system user (Debian's ``postgresql`` package creates it). Tests using them
are skipped only when no PostgreSQL binaries are installed.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class PostgresServer:
    """A running server: where it listens and who owns it."""

    host: str
    port: int
    user: str

    def url(self, database: str = "postgres") -> str:
        """A ``postgresql://`` URL (the form ``archon tune --storage`` takes)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"


def _bin_dir() -> Path | None:
    """The newest installed PostgreSQL server binaries (Debian's layout, else ``initdb`` on the PATH)."""

    def version(initdb: str) -> tuple[int, ...]:
        return tuple(int(x) for x in Path(initdb).parent.parent.name.split(".") if x.isdigit())

    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    found = versions[-1] if versions else shutil.which("initdb")
    if found is None or not Path(found).with_name("pg_ctl").exists():
        return None
    return Path(found).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's postgresql package")
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    root = Path(tempfile.mkdtemp(prefix="archon-pg-"))
    data, sockets, log = root / "data", root / "sockets", root / "server.log"
    sockets.mkdir()
    if as_root:
        for path in (root, sockets):
            shutil.chown(path, "postgres", "postgres")

    def pg(*args: str) -> subprocess.CompletedProcess[str]:
        # cwd: a directory the server's user may enter (the test's own may be root's alone)
        return subprocess.run([*prefix, *args], cwd=root, capture_output=True, text=True, timeout=120)

    user = "postgres"
    try:
        init = pg(str(bin_dir / "initdb"), "-D", str(data), "-U", user, "-A", "trust", "-E", "UTF8", "--locale=C", "-N")
        assert init.returncode == 0, f"initdb failed:\n{init.stdout}{init.stderr}"
        port = _free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        start = pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        if start.returncode != 0:
            server_log = log.read_text() if log.exists() else ""
            pytest.fail(f"pg_ctl start failed:\n{start.stdout}{start.stderr}{server_log}")
        yield PostgresServer("127.0.0.1", port, user)
    finally:
        if data.exists():
            pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A ``postgresql://`` URL of a new, empty database on the module's server."""
    import psycopg

    name = f"archon_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres_server.url(name)
