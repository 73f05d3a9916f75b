#!/usr/bin/env python3
"""A throw-away PostgreSQL server on 127.0.0.1, for tests and benchmarks.

Uses Debian's binaries (/usr/lib/postgresql/*/bin): initdb in a temporary directory, then
pg_ctl on a free port with its socket in that directory. As root the server runs as the
``postgres`` user (PostgreSQL refuses to run as root). CI starts its own server in .ci/run
and exports AGGREGATOR_TEST_POSTGRES_URL; tests start one with this module when it is unset.

    python scripts/pg_local.py   # start one, print its URL, stop it on Ctrl-C
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path


def pg_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/N/bin holding initdb and pg_ctl, if any."""
    found = []
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        if os.path.exists(os.path.join(d, "initdb")) and os.path.exists(os.path.join(d, "pg_ctl")):
            version = Path(d).parent.name
            found.append((int(version) if version.isdigit() else 0, Path(d)))
    return max(found)[1] if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalPostgres:
    """initdb + pg_ctl start; ``url`` is the admin URL (database ``postgres``)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="aggregator-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> LocalPostgres:
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=300"
        )
        log = self.dir / "server.log"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(log), "-w", "start")
        return self

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


def create_database(admin_url: str, name: str | None = None, template: str | None = None) -> str:
    """CREATE DATABASE (optionally from a template); returns the new database's URL."""
    import sqlalchemy as sa

    name = name or f"t_{uuid.uuid4().hex[:16]}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            suffix = f" TEMPLATE {template}" if template else ""
            for attempt in range(20):
                try:
                    conn.exec_driver_sql(f'CREATE DATABASE "{name}"{suffix}')
                    break
                except sa.exc.OperationalError:
                    # "source database is being accessed by other users": retry briefly.
                    if attempt == 19:
                        raise
                    time.sleep(0.1)
    finally:
        engine.dispose()
    return sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        engine.dispose()


if __name__ == "__main__":
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        raise SystemExit("no PostgreSQL binaries in /usr/lib/postgresql/*/bin")
    server = LocalPostgres(bin_dir).start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
