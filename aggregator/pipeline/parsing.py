"""Parse feeds in worker processes with a memory limit and a wall-clock budget.

feedparser on hostile bytes can take seconds (a 32 KiB ``<author>`` costs ~7 s in its
e-mail regex, feedparser #562), gigabytes, or crash in C. Each feed is parsed by one of
``parse_workers`` long-lived workers (``aggregator.parseworker``, address space capped by
RLIMIT_AS at ``parse_memory_mb``); a worker that overruns ``parse_timeout_seconds`` is
killed, one that dies is reaped, and either is replaced on the next feed, so the cost is
one feed error. Workers are plain ``python -m`` subprocesses, not forks: the daemon has
fetch threads (forking them is unsafe) and the clustering stack (~116 MB) stays out of
the workers, which start in 0.17-0.35 s (scripts/bench_parse_pool.py, busy 2-core host)
and are reused for every feed of a pass and across the daemon's ticks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from aggregator import frames
from aggregator.config import FetchSettings
from aggregator.errors import ParseError
from aggregator.models import ParsedFeed

log = logging.getLogger(__name__)

WORKER_MODULE = "aggregator.parseworker"
DEFAULT_TARGET = "aggregator.parse:parse_feed"
# Classes a worker's reply may contain (frames.decode refuses anything else).
REPLY_CLASSES = frozenset(
    {
        ("aggregator.models", "ParsedFeed"),
        ("aggregator.models", "ParsedEntry"),
        ("datetime", "datetime"),
        ("datetime", "timezone"),
        ("datetime", "timedelta"),
    }
)
# A reply larger than this is refused (a compromised worker must not exhaust the
# daemon's memory); 500 entries of a 10 MB feed pickle to well under it.
MAX_REPLY_BYTES = 256 * 1024 * 1024
# A worker says "ready" once imported and limited; on a loaded host that can take
# seconds (0.35 s measured on a busy 2-core machine), so it has its own generous bound.
START_TIMEOUT_SECONDS = 60.0
# How long a worker may take to exit after its stdin closes before it is killed.
CLOSE_GRACE_SECONDS = 2.0


class _WorkerLost(Exception):
    """The worker overran its budget or died; it is gone and must be replaced."""


class _Worker:
    def __init__(self, memory_mb: int, target: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, "--memory-mb", str(memory_mb),
             "--target", target],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )  # fmt: skip
        self.peak_rss = 0
        self.ready = False

    def run(self, job: tuple[Any, ...], timeout: float) -> tuple[Any, ...]:
        assert self.proc.stdin is not None
        if not self.ready:  # start-up (imports) is not charged to the feed's budget
            self._reply(
                time.monotonic() + START_TIMEOUT_SECONDS,
                f"parser worker did not start within {START_TIMEOUT_SECONDS:g} s",
            )
            self.ready = True
        try:
            self.proc.stdin.write(frames.encode(job))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise _WorkerLost(self._death()) from e
        return self._reply(
            time.monotonic() + timeout,
            f"parsing took longer than {timeout:g} s: worker killed (fetch.parse_timeout_seconds)",
        )

    def _reply(self, deadline: float, overrun: str) -> tuple[Any, ...]:
        header = self._read(frames.HEADER.size, deadline, overrun)
        (size,) = frames.HEADER.unpack(header)
        if size > MAX_REPLY_BYTES:
            self.kill()
            raise _WorkerLost(f"parser worker sent a {size}-byte reply (refused)")
        try:
            reply: tuple[Any, ...] = frames.decode(
                self._read(size, deadline, overrun), REPLY_CLASSES
            )
            _kind, _, _ = reply  # a 3-tuple, or the reply is invalid
        except (pickle.UnpicklingError, ValueError, TypeError, EOFError) as e:
            self.kill()
            raise _WorkerLost(f"parser worker sent an invalid reply ({e})") from e
        return reply

    def _read(self, n: int, deadline: float, overrun: str) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        parts: list[bytes] = []
        poller = select.poll()  # not select(): fd numbers may pass FD_SETSIZE in a daemon
        poller.register(fd, select.POLLIN | select.POLLHUP)
        while n:
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000):
                self.kill()
                raise _WorkerLost(overrun)
            chunk = os.read(fd, min(n, 1 << 20))
            if not chunk:
                raise _WorkerLost(self._death())
            parts.append(chunk)
            n -= len(chunk)
        return b"".join(parts)

    def _death(self) -> str:
        code = self.reap()
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"parser worker crashed (killed by {name})"
        return f"parser worker crashed (exit status {code})"

    def reap(self) -> int:
        """Wait for the process, keeping its peak RSS (ru_maxrss) from the kernel."""
        if self.proc.returncode is None:
            _, status, usage = os.wait4(self.proc.pid, 0)
            self.proc.returncode = os.waitstatus_to_exitcode(status)
            self.peak_rss = max(self.peak_rss, usage.ru_maxrss * 1024)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        self.reap()

    def close(self) -> None:
        """Ask the worker to exit (EOF on its stdin); kill it if it does not."""
        if self.proc.returncode is None and self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            end = time.monotonic() + CLOSE_GRACE_SECONDS
            while self.proc.poll() is None and time.monotonic() < end:
                time.sleep(0.01)
        self.kill()


class ParsePool:
    """``parse_workers`` worker processes shared by the threads of a refresh pass.

    ``parse()`` blocks until a worker is free, so at most ``parse_workers`` feeds are
    parsed at once (one per core by default). ``peak_rss_bytes`` is the largest resident
    set any worker reached (ru_maxrss), ``replaced`` how many workers were lost.
    """

    def __init__(self, settings: FetchSettings, *, target: str = DEFAULT_TARGET) -> None:
        self.settings = settings
        self.target = target
        self.peak_rss_bytes = 0
        self.started = 0
        self.replaced = 0
        self._slots = threading.BoundedSemaphore(settings.parse_workers)
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._closed = False

    def __enter__(self) -> ParsePool:
        return self

    def __exit__(
        self, exc: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def parse(
        self,
        content: bytes,
        url: str,
        headers: Mapping[str, str] | None = None,
        max_entries: int | None = None,
    ) -> ParsedFeed:
        """Parse in a worker; any overrun or crash is a ``ParseError`` for this feed only."""
        job = (content, url, dict(headers or {}), max_entries)
        with self._slots:
            worker = self._take()
            try:
                reply = worker.run(job, self.settings.parse_timeout_seconds)
            except _WorkerLost as e:
                self._lost(worker)
                log.warning("%s: %s", url, e)
                raise ParseError(url, str(e), transient=True) from None
            except BaseException:
                worker.kill()
                self._lost(worker)
                raise
            kind, value, peak = reply
            self._note_peak(peak)
            if kind == "fatal":  # MemoryError: the worker exits; a fresh one takes the next feed
                self._lost(worker)
            else:
                self._give_back(worker)
        if kind == "ok":
            assert isinstance(value, ParsedFeed)
            return value
        raise ParseError(url, str(value), transient=kind == "fatal")

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise RuntimeError("parse pool is closed")
            while self._idle:
                worker = self._idle.pop()
                if worker.proc.poll() is None:
                    return worker
                worker.reap()  # died while idle: never hand a dead worker a feed
            self.started += 1
        return _Worker(self.settings.parse_memory_mb, self.target)

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(worker)
                return
        worker.close()

    def _lost(self, worker: _Worker) -> None:
        worker.kill()
        self._note_peak(worker.peak_rss)
        with self._lock:
            self.replaced += 1

    def _note_peak(self, rss: int) -> None:
        with self._lock:
            self.peak_rss_bytes = max(self.peak_rss_bytes, int(rss))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close()
            self._note_peak(worker.peak_rss)
