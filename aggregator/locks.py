"""Process locks on files (fcntl): one daemon per SQLite database, one cron command at a time.

The kernel drops an fcntl lock when its process dies, however it dies (SIGKILL included), so
a crash never leaves a stale lock behind. The holder's pid is written into the file, only
to say who holds it.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

import sqlalchemy as sa

from aggregator.config import Settings
from aggregator.errors import LockedError

# How often a waiting command retries a held lock.
POLL_SECONDS = 0.2


def is_sqlite(settings: Settings) -> bool:
    return sa.make_url(settings.database.url).get_backend_name() == "sqlite"


def lock_path(settings: Settings, name: str) -> Path:
    """``<database>.<name>.lock`` next to a SQLite file, else ``<data dir>/<name>.lock``.

    Next to the file, so two configurations naming the same database share the lock.
    """
    url = sa.make_url(settings.database.url)
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and database and not database.startswith(":memory:"):
        db = Path(database).expanduser().resolve()
        return db.with_name(f"{db.name}.{name}.lock")
    return settings.data.dir / f"{name}.lock"


class FileLock:
    """An exclusive, non-reentrant lock on ``path``, held until ``release`` or process exit."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def acquire(self, wait: float = 0.0) -> None:
        """Take the lock, waiting up to ``wait`` seconds; else raise ``LockedError``."""
        deadline = time.monotonic() + wait
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                raise LockedError(self.message())
            time.sleep(POLL_SECONDS)

    def holder(self) -> str:
        try:
            pid = self.path.read_text(encoding="ascii").strip()
        except OSError:
            return ""
        return f"pid {pid}" if pid.isdigit() else ""

    def message(self) -> str:
        who = self.holder()
        return f"{self.what} already runs{f' ({who})' if who else ''}; lock {self.path}"

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self, exc: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def daemon_lock(settings: Settings) -> FileLock:
    return FileLock(lock_path(settings, "run"), "a daemon (aggregator run) on this database")


def command_lock(settings: Settings, command: str) -> FileLock:
    """The lock of ``fetch`` or ``cluster``, shared by cron commands and the daemon's ticks."""
    what = {"fetch": "a fetch pass", "cluster": "a clustering run"}.get(command, command)
    return FileLock(lock_path(settings, command), what)
