"""Progress of long commands: a bar on a terminal, plain lines otherwise (logs, cron mail)."""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import Any, TextIO

import click

# Without a terminal, a line every this many seconds (and the last one): readable in a log.
PLAIN_EVERY_SECONDS = 5.0


class Progress:
    """Thread-safe: fetch workers report from several threads. Writes to stderr."""

    def __init__(self, label: str, unit: str, *, stream: TextIO | None = None) -> None:
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.total: int | None = None
        self.done = 0
        self._bar: Any = None
        self._lock = threading.Lock()
        self._last_line = 0.0

    def advance(self, total: int, n: int = 1) -> None:
        with self._lock:
            if self.total is None:
                self.total = total
                if self.tty:
                    self._bar = click.progressbar(
                        length=total, label=self.label, file=self.stream, show_pos=True
                    )
                    self._bar.__enter__()
            self.done += n
            if self._bar is not None:
                self._bar.update(n)
            elif time.monotonic() - self._last_line >= PLAIN_EVERY_SECONDS or self.done == total:
                self._last_line = time.monotonic()
                click.echo(f"{self.label}: {self.done}/{total} {self.unit}", file=self.stream)

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.__exit__(None, None, None)
                self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
